// Public API of @lithe/server: an OpenAI-compatible HTTP server over a lithe pipeline.
export {
  createServer,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_QUEUE,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_WRITE_TIMEOUT_MS,
  type CreateServerOptions,
  type LitheServerHandle,
} from './server.js';
export { parseCors, type CorsOrigins } from './cors.js';
export { DEFAULT_TEMPLATE_TIMEOUT_MS, PromptWorker, type PromptWorkerOptions } from './prompt-worker.js';
export { startServer, type RunningServer, type StartServerOptions } from './start-server.js';
export { runServer } from './run-server.js';
export { OpenAIError, type OpenAIErrorBody, type OpenAIErrorType } from './openai-errors.js';
export { Scheduler, type SchedulerOptions } from './scheduler.js';
export { ServerMetrics, type KvMemory } from './metrics.js';
export { defaultKvBudget, kvSessions, parseBytes } from './kv-budget.js';
export { checkpointPlugins } from './checkpoint-plugins.js';
export { readModelJson } from './model-json.js';
export type { ServerState } from './state.js';
