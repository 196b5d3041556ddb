import type { ChatMessage } from '../io/chat-template.js';
import type { LlamaConfig } from '../model/config.js';
import type { GenerationResult, TokenEvent } from '../generate/events.js';
import type { PerplexityResult } from '../generate/perplexity.js';
import { EventEmitter } from 'eventemitter3';
import type { MemorySnapshot } from '../backend/memory.js';
import { onMessage, type ForwardedEvents, type FromWorker, type LoadedInfo, type MessageEndpoint, type ToWorker, type WorkerGenerateOptions, type WorkerPipelineOptions } from './protocol.js';

/**
 * A pipeline that runs in a worker (a Web Worker, or a Node worker thread) whose script calls
 * `serveWorkerPipeline()`. The calling thread (a page's main thread) never runs a kernel, so it stays
 * responsive; generations stream their token events back as async iterators.
 *
 *     const worker = new Worker(new URL('./lithe-worker.js', import.meta.url), { type: 'module' });
 *     const pipeline = await createWorkerPipeline(worker, { model: 'hf:owner/repo' });
 *     for await (const ev of pipeline.generate('Once upon a time', { maxTokens: 64, signal })) show(ev.text);
 */

export interface WorkerEndpoint extends MessageEndpoint {
  terminate?(): unknown;
}

export interface CreateWorkerPipelineOptions extends WorkerPipelineOptions {
  /**
   * Load progress: weight bytes loaded ('load') or downloaded into the cache ('download', over all
   * the model's files, with the files complete of those known: see `DownloadProgress`).
   */
  onProgress?: (loadedBytes: number, totalBytes: number, what: 'load' | 'download', files?: { done: number; total: number }) => void;
}

export type WorkerGenerationOptions = WorkerGenerateOptions & { signal?: AbortSignal };

interface Pending {
  onMessage(m: FromWorker): void;
}

/** A generation running in the worker: iterate it for token events, or await `result`. */
export class WorkerGeneration implements AsyncIterable<TokenEvent> {
  private readonly events: TokenEvent[] = [];
  private wake: (() => void) | null = null;
  private ended = false;
  private error: Error | null = null;
  private iterated = false;
  readonly result: Promise<GenerationResult>;
  private settle!: { resolve(r: GenerationResult): void; reject(e: Error): void };

  constructor(private readonly abort: () => void) {
    this.result = new Promise<GenerationResult>((resolve, reject) => (this.settle = { resolve, reject }));
    this.result.catch(() => {});
  }

  /** @internal */
  push(m: FromWorker): void {
    if (m.type === 'token') this.events.push(m.event);
    else if (m.type === 'result') {
      this.ended = true;
      this.settle.resolve(m.result as GenerationResult);
    } else if (m.type === 'error') {
      this.ended = true;
      this.error = workerError(m);
      this.settle.reject(this.error);
    }
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TokenEvent> {
    if (this.iterated) throw new Error('a generation can be iterated only once');
    this.iterated = true;
    let done = false;
    try {
      for (;;) {
        while (this.events.length) yield this.events.shift()!;
        if (this.ended) break;
        await new Promise<void>((r) => (this.wake = r));
        this.wake = null;
      }
      if (this.error) throw this.error;
      done = true;
    } finally {
      // Leaving the loop early stops the generation, as with a local pipeline.
      if (!done && !this.ended) this.abort();
    }
  }
}

const workerError = (m: { name: string; message: string; stack?: string }): Error => {
  const e = new Error(m.message);
  e.name = m.name;
  if (m.stack) e.stack = m.stack;
  return e;
};

type Listeners = { [K in keyof ForwardedEvents]: (payload: ForwardedEvents[K]) => void };

/** A handle on a pipeline in a worker; it emits the pipeline's 'prefill', 'step' and 'memory' events. */
export class WorkerPipeline extends EventEmitter<Listeners> {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private disposed = false;
  config!: LlamaConfig;
  backendDescription!: string;
  cacheSize!: number;
  /** The backend's bytes by use, as of the last 'memory' event (or the load). */
  memory!: MemorySnapshot;

  /** @internal Use createWorkerPipeline. */
  constructor(readonly worker: WorkerEndpoint) {
    super();
    onMessage(worker, (data) => {
      const m = data as FromWorker;
      if (m.type === 'event') {
        if (m.event === 'memory') this.memory = m.payload as MemorySnapshot;
        this.emit(m.event, m.payload as never);
        return;
      }
      this.pending.get(m.id)?.onMessage(m);
      if (m.type === 'result' || m.type === 'error' || m.type === 'loaded') this.pending.delete(m.id);
    });
  }

  private send(m: ToWorker, onMessage: (m: FromWorker) => void): void {
    if (this.disposed) throw new Error('this worker pipeline was disposed');
    this.pending.set(m.id, { onMessage });
    this.worker.postMessage(m);
  }

  /** @internal */
  load(opts: CreateWorkerPipelineOptions): Promise<LoadedInfo> {
    const { onProgress, ...options } = opts;
    return new Promise((resolve, reject) => {
      this.send({ type: 'load', id: this.nextId++, options }, (m) => {
        if (m.type === 'progress' && m.what !== 'perplexity') onProgress?.(m.loadedBytes, m.totalBytes, m.what, m.files);
        else if (m.type === 'loaded') {
          ({ config: this.config, backendDescription: this.backendDescription, cacheSize: this.cacheSize, memory: this.memory } = m.info);
          resolve(m.info);
        } else if (m.type === 'error') reject(workerError(m));
      });
    });
  }

  private start(make: (id: number) => ToWorker, signal?: AbortSignal): WorkerGeneration {
    const id = this.nextId++;
    const abort = () => {
      if (!this.disposed) this.worker.postMessage({ type: 'abort', id } satisfies ToWorker);
    };
    const gen = new WorkerGeneration(abort);
    if (signal?.aborted) queueMicrotask(abort);
    signal?.addEventListener('abort', abort, { once: true });
    this.send(make(id), (m) => {
      gen.push(m);
      if (m.type !== 'token') signal?.removeEventListener('abort', abort);
    });
    return gen;
  }

  generate(prompt: string | readonly number[], opts: WorkerGenerationOptions = {}): WorkerGeneration {
    const { signal, ...options } = opts;
    return this.start((id) => ({ type: 'generate', id, prompt: typeof prompt === 'string' ? prompt : [...prompt], options }), signal);
  }

  chat(messages: readonly ChatMessage[], opts: WorkerGenerationOptions = {}): WorkerGeneration {
    const { signal, ...options } = opts;
    return this.start((id) => ({ type: 'chat', id, messages: messages.map((x) => ({ ...x })), options }), signal);
  }

  perplexity(text: string, opts: { context?: number; onWindow?: (done: number, total: number) => void } = {}): Promise<PerplexityResult> {
    return new Promise((resolve, reject) => {
      this.send({ type: 'perplexity', id: this.nextId++, text, context: opts.context }, (m) => {
        if (m.type === 'progress') opts.onWindow?.(m.loadedBytes, m.totalBytes);
        else if (m.type === 'result') resolve(m.result as PerplexityResult);
        else if (m.type === 'error') reject(workerError(m));
      });
    });
  }

  /** Frees the pipeline in the worker; with `terminate` (default true) the worker ends too. */
  async dispose({ terminate = true }: { terminate?: boolean } = {}): Promise<void> {
    if (this.disposed) return;
    await new Promise<void>((resolve) => this.send({ type: 'dispose', id: this.nextId++ }, () => resolve()));
    this.disposed = true;
    if (terminate) await this.worker.terminate?.();
  }
}

/**
 * Loads a pipeline in `worker` (whose script calls `serveWorkerPipeline()`) and returns its handle.
 * Options are createPipeline's, minus what cannot cross threads: plugins are named
 * (`{ name: 'kvQuant', options: { bits: 8 } }`) and built in the worker from the factories its
 * script registered; the model is a path, URL, `hf:` id, File, Blob or FileList.
 */
export async function createWorkerPipeline(worker: WorkerEndpoint, opts: CreateWorkerPipelineOptions): Promise<WorkerPipeline> {
  const pipeline = new WorkerPipeline(worker);
  await pipeline.load(opts);
  return pipeline;
}
