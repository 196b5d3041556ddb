import { createPipeline } from '../pipeline/create-pipeline.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { LithePlugin } from '../plugin/types.js';
import { workerPort } from '../platform/worker-port.js';
import { FORWARDED_EVENTS, onMessage, type ForwardedEvents, type FromWorker, type MessageEndpoint, type ToWorker } from './protocol.js';

export interface ServeWorkerOptions {
  /** Plugin factories the calling thread may ask for by name, e.g. `{ kvQuant }` from @lithe/kv-quant. */
  plugins?: Record<string, (options: never) => LithePlugin>;
  /** Where messages come from; default the worker's own port (`self`, or Node's `parentPort`). */
  port?: MessageEndpoint;
}

/**
 * Runs inside a worker: loads a pipeline when asked and answers generate / chat / perplexity
 * requests from `createWorkerPipeline` on the other side, streaming token events as they come.
 */
export function serveWorkerPipeline(opts: ServeWorkerOptions = {}): void {
  const port = opts.port ?? workerPort();
  if (!port) throw new Error('serveWorkerPipeline runs inside a worker (a Web Worker or a Node worker thread); this thread has no parent to talk to');
  const post = (m: FromWorker) => port.postMessage(m);
  const running = new Map<number, AbortController>();
  let pipeline: Pipeline | null = null;

  const fail = (id: number, e: unknown) => {
    const err = e instanceof Error ? e : new Error(String(e));
    post({ type: 'error', id, name: err.name, message: err.message, stack: err.stack });
  };

  async function handle(m: ToWorker): Promise<void> {
    switch (m.type) {
      case 'load': {
        if (pipeline) throw new Error('this worker already holds a pipeline; create another worker for another model');
        const plugins = (m.options.plugins ?? []).map((spec) => {
          const factory = opts.plugins?.[spec.name];
          if (!factory) throw new Error(`plugin '${spec.name}' is not available in the worker: pass it to serveWorkerPipeline({ plugins: { ${spec.name} } }) in the worker script`);
          return factory(spec.options as never);
        });
        const { download, ...rest } = m.options;
        pipeline = await createPipeline({
          ...rest,
          plugins,
          download: { ...download, onDownloadProgress: (d) => post({ type: 'progress', id: m.id, loadedBytes: d.loadedBytes, totalBytes: d.totalBytes, what: 'download', files: { done: d.filesDone, total: d.filesTotal } }) },
          onProgress: (loadedBytes, totalBytes) => post({ type: 'progress', id: m.id, loadedBytes, totalBytes, what: 'load' }),
        });
        for (const event of FORWARDED_EVENTS) pipeline.on(event, (payload: ForwardedEvents[typeof event]) => post({ type: 'event', id: 0, event, payload }));
        post({ type: 'loaded', id: m.id, info: { config: pipeline.config, backendDescription: pipeline.backendDescription, cacheSize: pipeline.cacheSize, memory: pipeline.backend.memory.snapshot() } });
        return;
      }
      case 'generate':
      case 'chat': {
        const p = loaded();
        const stop = new AbortController();
        running.set(m.id, stop);
        try {
          const options = { ...m.options, signal: stop.signal };
          const gen = m.type === 'generate' ? p.generate(m.prompt, options) : p.chat(m.messages, options);
          for await (const event of gen) post({ type: 'token', id: m.id, event });
          post({ type: 'result', id: m.id, result: await gen.result });
        } finally {
          running.delete(m.id);
        }
        return;
      }
      case 'perplexity': {
        const result = await loaded().perplexity(m.text, { context: m.context, onWindow: (done, total) => post({ type: 'progress', id: m.id, loadedBytes: done, totalBytes: total, what: 'perplexity' }) });
        post({ type: 'result', id: m.id, result });
        return;
      }
      case 'abort':
        running.get(m.id)?.abort();
        return;
      case 'dispose':
        for (const c of running.values()) c.abort();
        pipeline?.dispose();
        pipeline = null;
        post({ type: 'result', id: m.id, result: null });
        return;
    }
  }

  const loaded = (): Pipeline => {
    if (!pipeline) throw new Error('no pipeline is loaded in this worker');
    return pipeline;
  };

  onMessage(port, (data) => {
    const m = data as ToWorker;
    handle(m).catch((e: unknown) => fail(m.id, e));
  });
}
