import type { ThreadsPlatform, WorkerHandle } from './types.js';

/** Browsers: Web Workers from a Blob URL; threads only on a cross-origin isolated page. */

interface WebWorker extends WorkerHandle {
  onmessage: (() => void) | null;
  onerror: ((e: { message: string }) => void) | null;
  postMessage(d: unknown): void;
}

const g = globalThis as unknown as {
  Worker?: new (url: string) => WebWorker;
  crossOriginIsolated?: boolean;
  navigator?: { hardwareConcurrency?: number };
  WorkerGlobalScope?: abstract new () => unknown;
};

async function spawnWorker(source: string, data: Record<string, unknown>): Promise<WorkerHandle> {
  if (!g.Worker) throw new Error('the wasm backend needs Web Workers for threads > 1, and this context has none; pass threads: 1');
  const main = 'self.onmessage = (e) => start(e.data, (m) => self.postMessage(m));\n';
  const url = URL.createObjectURL(new Blob([`${source}\n${main}`], { type: 'text/javascript' }));
  try {
    const w = new g.Worker(url);
    await new Promise<void>((resolve, reject) => {
      w.onmessage = () => resolve();
      w.onerror = (e) => reject(new Error(`a wasm worker failed to start: ${e.message}`));
      w.postMessage(data);
    });
    return w;
  } finally {
    URL.revokeObjectURL(url);
  }
}

async function physicalCores(): Promise<number> {
  return Math.max(1, g.navigator?.hardwareConcurrency ?? 1);
}

let warned = false;

/** Threads share memory through a SharedArrayBuffer, which only a cross-origin isolated page has. */
async function defaultThreads(): Promise<number> {
  if (g.crossOriginIsolated === true) return physicalCores();
  if (!warned) {
    warned = true;
    console.info(
      'lithe: this page is not cross-origin isolated, so the wasm backend runs on 1 thread. For threads, serve the page with ' +
        'the headers "Cross-Origin-Opener-Policy: same-origin" and "Cross-Origin-Embedder-Policy: require-corp".',
    );
  }
  return 1;
}

// Atomics.wait throws on a page's main thread; a worker (a Worker-hosted pipeline) may block.
const canBlock = typeof g.WorkerGlobalScope === 'function' && globalThis instanceof g.WorkerGlobalScope;

export const threads: ThreadsPlatform = { spawnWorker, physicalCores, defaultThreads, canBlock };
