import { createWorkerPipeline } from '@lithe/core';
import { greedy, type GreedyRequest, type GreedyResult } from './greedy.js';

// The test page: runs greedy generations on the main thread or in a Worker and lists each result.

function inWorker(req: GreedyRequest): Promise<GreedyResult> {
  const w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  return new Promise<GreedyResult>((resolve, reject) => {
    w.onmessage = (e: MessageEvent<{ result?: GreedyResult; error?: string }>) => (e.data.result ? resolve(e.data.result) : reject(new Error(e.data.error)));
    w.onerror = (e) => reject(new Error(`worker failed: ${e.message}`));
    w.postMessage(req);
  }).finally(() => w.terminate());
}

function show(where: string, r: GreedyResult): void {
  const row = document.createElement('tr');
  for (const cell of [where, r.backend, String(r.ids.length), r.text]) {
    const td = document.createElement('td');
    td.textContent = cell;
    row.append(td);
  }
  document.querySelector('tbody')!.append(row);
}

/** `model: 'picked'` stands for the files picked in the page's file input (a FileList). */
async function run(where: 'page' | 'worker', req: GreedyRequest): Promise<GreedyResult> {
  if (req.model === 'picked') req = { ...req, model: document.querySelector<HTMLInputElement>('#files')!.files! };
  const r = where === 'page' ? await greedy(req) : await inWorker(req);
  show(where, r);
  return r;
}

/**
 * createWorkerPipeline over a Web Worker: greedy ids streamed as events, then a generation stopped
 * by an AbortSignal after `stopAfter` tokens. The page's main thread runs no kernel.
 */
async function workerPipeline(req: GreedyRequest & { stopAfter: number }) {
  const progress: number[] = [];
  const worker = new Worker(new URL('./pipeline-worker.js', import.meta.url), { type: 'module' });
  const pipeline = await createWorkerPipeline(worker, { model: req.model, backend: req.backend, threads: req.threads, kvDtype: 'f32', cacheSize: 128, onProgress: (loaded) => progress.push(loaded) });
  try {
    const streamed: number[] = [];
    const gen = pipeline.generate(req.prompt, { maxTokens: req.maxTokens, temperature: 0, stopOnEos: false });
    for await (const ev of gen) if (ev.id !== null) streamed.push(ev.id);
    const result = await gen.result;
    show('createWorkerPipeline', { ids: result.tokenIds, text: result.text, backend: pipeline.backendDescription, crossOriginIsolated });
    const stop = new AbortController();
    let seen = 0;
    const stopped = pipeline.generate(req.prompt, { maxTokens: 100, temperature: 0, stopOnEos: false, signal: stop.signal });
    for await (const ev of stopped) if (ev.id !== null && ++seen === req.stopAfter) stop.abort();
    const aborted = await stopped.result;
    return { ids: result.tokenIds, streamed, backend: pipeline.backendDescription, progressEvents: progress.length, abortedFinish: aborted.finishReason, abortedTokens: aborted.completionTokens };
  } finally {
    await pipeline.dispose();
  }
}

/** Copies the fixture into the origin private file system and runs on its directory handle. */
async function runOpfs(where: 'page' | 'worker', req: GreedyRequest & { files: string[]; from: string }): Promise<GreedyResult> {
  const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('tiny-brown', { create: true });
  for (const name of req.files) {
    const bytes = await (await fetch(`${req.from}${name}`)).arrayBuffer();
    const out = await (await dir.getFileHandle(name, { create: true })).createWritable();
    await out.write(bytes);
    await out.close();
  }
  return run(where, { ...req, model: dir });
}

(globalThis as unknown as { litheRun: typeof run; litheRunOpfs: typeof runOpfs }).litheRun = run;
(globalThis as unknown as { litheRunOpfs: typeof runOpfs }).litheRunOpfs = runOpfs;
(globalThis as unknown as { litheWorkerPipeline: typeof workerPipeline }).litheWorkerPipeline = workerPipeline;
document.querySelector('#status')!.textContent = `ready (crossOriginIsolated: ${String(globalThis.crossOriginIsolated)})`;
