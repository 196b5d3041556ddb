import type { MessageEndpoint } from '../worker/protocol.js';

/** Browsers: a worker's global scope (`self`), or null on a page. */
export function workerPort(): MessageEndpoint | null {
  const g = globalThis as unknown as { WorkerGlobalScope?: abstract new () => unknown };
  return typeof g.WorkerGlobalScope === 'function' && globalThis instanceof g.WorkerGlobalScope ? (globalThis as unknown as MessageEndpoint) : null;
}
