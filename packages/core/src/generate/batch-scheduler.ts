import type { KVCache } from '../kv-cache/kv-cache.js';
import type { LlamaModel } from '../model/llama.js';
import type { BatchStepInfo } from './events.js';

/**
 * How a generation runs the model: one call per decode step (or prefill, or verification). A call
 * given a `signal` that aborts before its last chunk has run (a long prompt prefilled over several
 * steps) stops between chunks and rejects with the signal's reason; the cache keeps the chunks run.
 */
export interface ModelRunner {
  /** f32 logits of the last row ('last', into `into` when given) or of every row ('all'). */
  forward(ids: readonly number[], cache: KVCache, logits: 'last' | 'all', into?: Float32Array, signal?: AbortSignal): Promise<Float32Array>;
  /** The argmax of the last row's logits, taken on the backend (4 bytes read back). */
  argmax(ids: readonly number[], cache: KVCache, signal?: AbortSignal): Promise<number>;
}

interface Request {
  ids: Int32Array;
  /** Tokens of `ids` already run by earlier steps (a prompt prefilled in chunks). */
  done: number;
  cache: KVCache;
  logits: 'last' | 'all' | 'argmax';
  into?: Float32Array;
  signal?: AbortSignal;
  resolve(value: Float32Array | number): void;
  reject(error: unknown): void;
}

export interface BatchSchedulerOptions {
  /**
   * Most new tokens one step runs over all sequences (default: the model's maxChunk). A longer
   * prompt is prefilled in chunks over several steps, so the decode rows of the others go on
   * between its chunks instead of waiting for its whole prefill.
   */
  stepTokens?: number;
  /**
   * Event-loop turns a step waits for generations that have not queued their next call yet (default
   * 4), then runs without them: I/O runs in those turns, and a slow consumer holds nobody back longer.
   */
  waitTurns?: number;
  /** Called after every step (metrics: batch size per step). */
  onStep?: (info: BatchStepInfo) => void;
}

// Requests this small run whole in any step (decode rows, speculative verification of k + 1).
const SMALL_REQUEST = 16;

// A macrotask, so that every generation whose step is already under way (resolved promises,
// microtasks) has queued its request before the batch runs.
const macrotask: (fn: () => void) => void =
  typeof setImmediate === 'function'
    ? (fn) => setImmediate(fn)
    : typeof MessageChannel === 'function'
      ? (() => {
          const queue: (() => void)[] = [];
          const ch = new MessageChannel();
          (ch.port1 as unknown as { onmessage: () => void }).onmessage = () => queue.shift()?.();
          return (fn: () => void) => (queue.push(fn), ch.port2.postMessage(null));
        })()
      : (fn) => setTimeout(fn, 0);

/**
 * Batches the model calls of the generations running at the same time on one model: requests that
 * arrive together run as one `forwardBatch` (one pass over the weights for all of them), each on
 * its own KV cache. A batch runs as soon as every joined generation has a request waiting, or after
 * `waitTurns` event-loop turns when some are busy elsewhere (a slow consumer does not hold the others back).
 * Generations join when they start and leave when they end, so finished sequences leave the batch.
 * Each step runs at most `stepTokens` new tokens: decode rows first, then prompts in arrival order,
 * a long prompt in chunks over several steps (chunked prefill; its logits come with its last chunk).
 * One batch runs at a time: the model's activation buffers are shared.
 */
export class BatchScheduler implements ModelRunner {
  private active = 0;
  private queue: Request[] = [];
  private running = false;
  private scheduled = false;
  private logitsOut = new Float32Array(0);
  /** When the last step ended, and when the running generations' first one joined: the gaps between steps. */
  private lastStepEnd = 0;
  private busySince = 0;
  private readonly stepTokens: number;
  private readonly waitTurns: number;

  constructor(
    private readonly model: LlamaModel,
    private readonly opts: BatchSchedulerOptions = {},
  ) {
    this.stepTokens = opts.stepTokens ?? model.maxChunk;
    this.waitTurns = opts.waitTurns ?? 4;
    if (!(Number.isSafeInteger(this.stepTokens) && this.stepTokens >= 1)) throw new RangeError(`stepTokens must be an integer >= 1, got ${this.stepTokens}`);
    if (!(Number.isSafeInteger(this.waitTurns) && this.waitTurns >= 1)) throw new RangeError(`waitTurns must be an integer >= 1, got ${this.waitTurns}`);
  }

  /** Generations joined to this scheduler now. */
  get generations(): number {
    return this.active;
  }

  /** A generation starts; call the returned function when it ends. */
  join(): () => void {
    if (this.active === 0) this.busySince = performance.now();
    this.active++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.active--;
      this.kick();
    };
  }

  forward(ids: readonly number[], cache: KVCache, logits: 'last' | 'all', into?: Float32Array, signal?: AbortSignal): Promise<Float32Array> {
    return this.enqueue(ids, cache, logits, into, signal) as Promise<Float32Array>;
  }

  argmax(ids: readonly number[], cache: KVCache, signal?: AbortSignal): Promise<number> {
    return this.enqueue(ids, cache, 'argmax', undefined, signal) as Promise<number>;
  }

  private enqueue(ids: readonly number[], cache: KVCache, logits: Request['logits'], into?: Float32Array, signal?: AbortSignal): Promise<Float32Array | number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ids: Int32Array.from(ids), done: 0, cache, logits, into, signal, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.running || this.queue.length === 0) return;
    if (this.queue.length >= this.active) {
      this.running = true;
      queueMicrotask(() => void this.run());
    } else if (!this.scheduled) {
      this.scheduled = true;
      this.waitTurn(0);
    }
  }

  // Generations that are away (writing to a socket, yielding to the event loop between steps) get
  // a few event-loop turns to queue their next step before the batch runs without them.
  private waitTurn(turn: number): void {
    macrotask(() => {
      if (this.running || this.queue.length === 0) return void (this.scheduled = false);
      if (this.queue.length < this.active && turn + 1 < this.waitTurns) return this.waitTurn(turn + 1);
      this.scheduled = false;
      this.running = true;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    // A request whose cache is shared with an earlier one waits for the next batch.
    const seen = new Set<KVCache>();
    const ready: Request[] = [];
    const rest: Request[] = [];
    for (const r of this.queue) {
      // Aborted while waiting (between the chunks of its prompt, too): its later chunks never run.
      if (r.signal?.aborted) r.reject(r.signal.reason);
      else if (seen.has(r.cache)) rest.push(r);
      else if (r.done === 0 && !r.cache.unbounded && r.cache.length + r.ids.length > r.cache.capacity) {
        r.reject(new RangeError(`KV cache is full: ${r.cache.length} + ${r.ids.length} tokens exceed its size of ${r.cache.capacity}; raise the cache size`));
      } else {
        seen.add(r.cache);
        ready.push(r);
      }
    }
    const { batch, partial } = this.plan(ready, rest);
    // Requests not in this step, and prompts with chunks still to run, wait for the next one.
    this.queue = [...partial, ...rest];
    try {
      if (batch.length > 0) await this.runBatch(batch);
    } catch (e) {
      for (const { r } of batch) r.reject(e);
      this.queue = this.queue.filter((q) => !batch.some((p) => p.r === q));
    } finally {
      this.running = false;
      this.kick();
    }
  }

  /** This step's share of each ready request: small ones whole, then prompt chunks within the step's tokens. */
  private plan(ready: Request[], rest: Request[]): { batch: Part[]; partial: Request[] } {
    let room = this.stepTokens;
    const batch: Part[] = [];
    const partial: Request[] = [];
    const take = (r: Request, n: number) => {
      const end = r.done + n;
      batch.push({ r, ids: r.ids.subarray(r.done, end), last: end === r.ids.length });
      room -= n;
    };
    const big: Request[] = [];
    for (const r of ready) {
      const left = r.ids.length - r.done;
      // 'all' logits (verification, scoring) are never split: they want every row in one call.
      if (left <= SMALL_REQUEST || r.logits === 'all') take(r, left);
      else big.push(r);
    }
    let chunked = false;
    for (const r of big) {
      const left = r.ids.length - r.done;
      // The first prompt always advances (by a token at least); later ones only while the step has room.
      const n = Math.min(left, chunked ? room : Math.max(room, 1));
      if (n <= 0) {
        rest.push(r);
        continue;
      }
      chunked = true;
      take(r, n);
      if (r.done + n < r.ids.length) partial.push(r);
    }
    return { batch, partial };
  }

  private async runBatch(batch: Part[]): Promise<void> {
    const { model } = this;
    const b = model.backend;
    const t0 = performance.now();
    // The model sat idle since the last step while generations were running: their sampling,
    // detokenizing and streaming between steps, and the scheduler's turns waiting for them.
    const gapMs = Math.max(0, t0 - Math.max(this.lastStepEnd, this.busySince));
    const seqs = batch.map((p) => ({ ids: p.ids, cache: p.r.cache, logits: !p.last ? ('none' as const) : p.r.logits === 'all' ? ('all' as const) : ('last' as const) }));
    const logits = model.forwardBatch(seqs);
    // Row of each request's logits in the batch output.
    const first: number[] = [];
    let rows = 0;
    for (const s of seqs) {
      first.push(rows);
      rows += s.logits === 'all' ? s.ids.length : s.logits === 'last' ? 1 : 0;
    }
    const done = batch.filter((p) => p.last);
    const vocab = model.config.vocabSize;
    const argmaxRows = logits && done.some((p) => p.r.logits === 'argmax') ? ((await b.read(model.argmax(logits))) as Int32Array) : null;
    let all: Float32Array | null = null;
    if (logits && done.some((p) => p.r.logits !== 'argmax')) {
      const only = done.length === 1 ? done[0].r.into : undefined;
      const solo = only?.length === logits.size ? only : undefined;
      if (!solo && this.logitsOut.length < logits.size) this.logitsOut = new Float32Array(logits.size);
      all = (await b.read(logits, solo ?? this.logitsOut.subarray(0, logits.size))) as Float32Array;
    }
    this.lastStepEnd = performance.now();
    this.opts.onStep?.({ sequences: batch.length, rows: batch.reduce((n, p) => n + p.ids.length, 0), prefillChunks: batch.length - done.length, ms: this.lastStepEnd - t0, gapMs });
    batch.forEach((p, i) => {
      const { r } = p;
      r.done += p.ids.length;
      if (!p.last) return;
      const row = first[i];
      if (r.logits === 'argmax') return r.resolve(argmaxRows![row]);
      const n = r.logits === 'all' ? r.ids.length : 1;
      const src = all!.subarray(row * vocab, (row + n) * vocab);
      if (all === r.into) return r.resolve(all);
      const dst = r.into && r.into.length === src.length ? r.into : new Float32Array(src.length);
      dst.set(src);
      r.resolve(dst);
    });
  }
}

/** One request's tokens in a step: all it has left, or a chunk of its prompt. */
interface Part {
  r: Request;
  ids: Int32Array;
  /** Whether this part ends the request (its logits come with it). */
  last: boolean;
}
