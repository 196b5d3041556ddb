import type { Pipeline } from '@lithe/core';
import type { ServerMetrics } from './metrics.js';
import type { Scheduler } from './scheduler.js';
import type { PromptWorker } from './prompt-worker.js';

/** What the routes share: the model (once loaded), admission, metrics and running generations. */
export interface ServerState {
  /** The id clients pass as `model`. */
  readonly modelId: string;
  /** Unix seconds when the server was created (the model's `created`). */
  readonly created: number;
  /** Null while the model loads (or after loading failed). */
  pipeline: Pipeline | null;
  /** Why loading failed, when it did. */
  loadError: Error | null;
  readonly scheduler: Scheduler;
  readonly metrics: ServerMetrics;
  /** One per running generation; aborting them all ends a drain that ran out of time. */
  readonly controllers: Set<AbortController>;
  /** Renders chat templates (under a time budget) and tokenizes prompts in a worker thread. */
  readonly prompts: PromptWorker;
  /** How long a stream waits for a client that does not read before giving up on it. */
  readonly writeTimeoutMs: number;
}
