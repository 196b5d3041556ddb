import { greedy, type GreedyRequest } from './greedy.js';

// A Web Worker that runs one greedy generation per message.
const scope = globalThis as unknown as { onmessage: ((e: { data: GreedyRequest }) => void) | null; postMessage(m: unknown): void };
scope.onmessage = (e) => {
  greedy(e.data).then(
    (result) => scope.postMessage({ result }),
    (err: Error) => scope.postMessage({ error: `${err.message}\n${err.stack ?? ''}` }),
  );
};
