// Public API of @lithe/server: an OpenAI-compatible HTTP server over a lithe pipeline.
export { createServer, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_QUEUE, type CreateServerOptions, type LitheServerHandle } from './server.js';
export { startServer, type RunningServer, type StartServerOptions } from './start-server.js';
export { runServer } from './run-server.js';
export { OpenAIError, type OpenAIErrorBody, type OpenAIErrorType } from './openai-errors.js';
export { Scheduler, type SchedulerOptions } from './scheduler.js';
export { ServerMetrics } from './metrics.js';
export type { ServerState } from './state.js';
