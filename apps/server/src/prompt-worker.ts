/**
 * Prompts prepared off the event loop. A model's Jinja template is code: one that loops or is
 * just slow would freeze /health, signals and every other request on the main thread, and so
 * would tokenizing a long prompt (tens of microseconds per character). Both run in a worker
 * thread (prompt-worker-thread.ts) with a time budget on the render and a memory limit; a worker
 * that runs out of either is terminated and a fresh one takes the next job.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ChatMessage, LitheTokenizer, RenderChatTemplateOptions } from '@lithe/core';
import { queueFull, templateFailed, templateTimeout } from './openai-errors.js';
import type { Job, Reply, ThreadData } from './prompt-worker-protocol.js';

export const DEFAULT_TEMPLATE_TIMEOUT_MS = 2000;
/** Old-generation heap of the worker: room for a large vocabulary, not for a runaway template. */
const WORKER_HEAP_MB = 512;
/** Loading core and the tokenizer in a fresh worker, before its first job. */
const STARTUP_TIMEOUT_MS = 60_000;
/** Text the worker's tokenizer must split exactly as the pipeline's does before it is trusted. */
const PROBE = 'Hello, world! <s> </s> <|eot_id|> [INST] \n\t  12345 ünïcödé 日本語 🙂 ';

/** An error raised by the template itself (raise_exception, a bad variable): the request's fault. */
export class TemplateRenderError extends Error {
  override name = 'TemplateRenderError';
}

type JobInput = Job extends infer J ? (J extends Job ? Omit<J, 'id'> : never) : never;

interface Pending {
  job: Job;
  resolve: (reply: Reply) => void;
  reject: (err: unknown) => void;
  timer?: NodeJS.Timeout;
}

/** The built thread entry: beside this module in dist/; run from the sources (tests), the built one. */
function threadEntry(): URL {
  const here = new URL('./prompt-worker-thread.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  return new URL('../dist/prompt-worker-thread.js', import.meta.url);
}

export interface PromptWorkerOptions {
  /** Time one template render may take (default 2000 ms). */
  timeoutMs?: number;
  /** Jobs that may wait for the worker; more are turned away with a 503 (default 64). */
  maxPending?: number;
}

export class PromptWorker {
  readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly queue: Pending[] = [];
  private data: ThreadData | null = null;
  private worker: Worker | null = null;
  private ready: Promise<boolean> | null = null;
  private running: Pending | null = null;
  private nextId = 1;
  private closed = false;
  private tokenizes = false;

  constructor(opts: PromptWorkerOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TEMPLATE_TIMEOUT_MS;
    this.maxPending = opts.maxPending ?? 64;
    if (!(Number.isFinite(this.timeoutMs) && this.timeoutMs > 0)) throw new RangeError(`template timeout must be > 0 ms, got ${this.timeoutMs}`);
  }

  /** Whether prompts are tokenized in the worker (else on the main thread, by the caller). */
  get encodes(): boolean {
    return this.tokenizes;
  }

  /**
   * Starts the worker for the pipeline's tokenizer. With `model` (the files the pipeline was
   * loaded from) the worker builds the same tokenizer and tokenizes too, once its ids for a probe
   * text match the pipeline's; `onMismatch` hears when they do not (then only templates run there).
   */
  async start(tokenizer: LitheTokenizer, model: string | null, onMismatch?: (why: string) => void): Promise<void> {
    this.data = { model, tokenizer: { bosTokenId: tokenizer.bosTokenId, eosTokenIds: tokenizer.eosTokenIds, chatTemplate: tokenizer.chatTemplate ?? undefined } };
    const encodes = await this.spawn().catch((e: unknown) => {
      onMismatch?.(e instanceof Error ? e.message : String(e));
      return false;
    });
    if (!encodes) return;
    const theirs = await this.encode(PROBE, true).catch(() => null);
    const ours = tokenizer.encode(PROBE);
    if (theirs && theirs.length === ours.length && theirs.every((id, i) => id === ours[i])) this.tokenizes = true;
    else onMismatch?.('the worker tokenizer does not match the pipeline tokenizer');
  }

  /** The rendered prompt text; rejects with an OpenAIError when the budget runs out. */
  async render(template: string, messages: readonly ChatMessage[], options: RenderChatTemplateOptions): Promise<string> {
    const r = await this.submit({ kind: 'render', template, messages: plain(messages), options });
    return (r as { text: string }).text;
  }

  /** Special literals broken, template rendered, text bounded and tokenized (when `encodes`). */
  async chat(template: string, messages: readonly ChatMessage[], options: RenderChatTemplateOptions, maxChars: number): Promise<{ ids: number[] } | { tooLong: number }> {
    const r = await this.submit({ kind: 'chat', template, messages: plain(messages), options, maxChars });
    return 'tooLong' in r ? { tooLong: r.tooLong } : { ids: Array.from((r as { ids: Int32Array }).ids) };
  }

  /** A raw prompt's ids, as Pipeline.encode gives them (when `encodes`). */
  async encode(text: string, beforeReady = false): Promise<number[]> {
    if (!this.tokenizes && !beforeReady) throw new Error('the prompt worker does not tokenize');
    const r = await this.submit({ kind: 'encode', text });
    return Array.from((r as { ids: Int32Array }).ids);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(templateFailed('the server is closing'));
    this.running?.reject(templateFailed('the server is closing'));
    this.running = null;
    const w = this.worker;
    this.worker = null;
    this.ready = null;
    await w?.terminate();
  }

  private submit(input: JobInput): Promise<Reply> {
    if (this.closed || !this.data) return Promise.reject(templateFailed(this.closed ? 'the server is closing' : 'the model is not loaded'));
    if (this.queue.length >= this.maxPending) return Promise.reject(queueFull());
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { ...input, id: this.nextId++ } as Job, resolve, reject });
      this.pump();
    });
  }

  /** A worker ready for jobs; resolves with whether it has a tokenizer. */
  private spawn(): Promise<boolean> {
    if (this.ready) return this.ready;
    const worker = new Worker(threadEntry(), { workerData: this.data, resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB } });
    // An idle worker must not keep the process alive.
    worker.unref();
    this.worker = worker;
    this.ready = new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => reject(templateFailed('the prompt worker did not start')), STARTUP_TIMEOUT_MS);
      worker.on('message', (m: Reply) => {
        if ('ready' in m) {
          clearTimeout(timer);
          resolve(m.encodes);
        } else if ('startupError' in m) {
          clearTimeout(timer);
          reject(templateFailed(`the prompt worker did not start (${m.startupError})`));
        } else this.reply(worker, m);
      });
      worker.on('error', (err) => {
        clearTimeout(timer);
        reject(templateFailed('the prompt worker failed'));
        this.crashed(worker, err);
      });
      worker.on('exit', () => {
        clearTimeout(timer);
        reject(templateFailed('the prompt worker stopped'));
        this.crashed(worker, null);
      });
    });
    this.ready.catch(() => {}); // whoever waits on it sees the error; a worker that dies idle is simply replaced
    return this.ready;
  }

  private pump(): void {
    if (this.running || this.closed || this.queue.length === 0) return;
    const p = this.queue.shift()!;
    this.running = p;
    this.spawn().then(
      () => {
        if (this.running === p) this.worker!.postMessage(p.job);
      },
      (err: unknown) => {
        this.discard(this.worker);
        this.finish(p, () => p.reject(err));
      },
    );
  }

  private reply(worker: Worker, m: Reply): void {
    const p = this.running;
    if (worker !== this.worker || !p || !('id' in m) || m.id !== p.job.id) return;
    if ('phase' in m) {
      if (m.phase === 'render') {
        p.timer = setTimeout(() => {
          if (this.running !== p) return;
          // A render cannot be interrupted: the worker goes, with whatever it was doing.
          this.discard(worker);
          this.finish(p, () => p.reject(templateTimeout(this.timeoutMs)));
        }, this.timeoutMs);
      } else clearTimeout(p.timer);
      return;
    }
    this.finish(p, () => ('error' in m ? p.reject(new TemplateRenderError(m.error)) : p.resolve(m)));
  }

  private crashed(worker: Worker, err: Error | null): void {
    if (worker !== this.worker) return;
    this.worker = null;
    this.ready = null;
    const p = this.running;
    if (p) {
      const why = err && (err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'it ran out of memory' : 'the prompt worker stopped';
      this.finish(p, () => p.reject(templateFailed(why)));
    }
  }

  private discard(worker: Worker | null): void {
    if (!worker || worker !== this.worker) return;
    this.worker = null;
    this.ready = null;
    void worker.terminate();
  }

  private finish(p: Pending, settle: () => void): void {
    clearTimeout(p.timer);
    if (this.running === p) this.running = null;
    settle();
    this.pump();
  }
}

/** Messages as plain objects (structured clone copies nothing else). */
function plain(messages: readonly ChatMessage[]): ChatMessage[] {
  return messages.map((m) => ({ role: m.role, content: m.content }));
}
