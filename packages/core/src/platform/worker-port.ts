import { parentPort } from 'node:worker_threads';
import type { MessageEndpoint } from '../worker/protocol.js';

/** Node: a worker thread's port to its parent, or null on the main thread. */
export const workerPort = (): MessageEndpoint | null => parentPort as unknown as MessageEndpoint | null;
