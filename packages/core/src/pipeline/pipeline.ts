import { EventEmitter } from 'eventemitter3';
import type { Backend } from '../backend/backend.js';
import type { ChatMessage } from '../io/chat-template.js';
import type { LitheTokenizer } from '../io/tokenizer.js';
import type { KVCache, KVCacheSpec, KVDType } from '../kv-cache/kv-cache.js';
import type { LlamaConfig } from '../model/config.js';
import { kvLayerCount } from '../model/kv-layer-map.js';
import type { LlamaModel } from '../model/llama.js';
import type { GenerationResult, PipelineEvents, TokenEvent } from '../generate/events.js';
import { BatchScheduler } from '../generate/batch-scheduler.js';
import { generateTokens, type GenerateOptions } from '../generate/generate.js';
import { perplexity, type PerplexityResult } from '../generate/perplexity.js';
import type { SamplingOptions } from '../generate/sampling.js';
import type { DecodeStep } from '../plugin/types.js';
import { KVCachePool } from './kv-cache-pool.js';

/** Tokens a generation makes when neither the caller nor generation_config.json says. */
export const DEFAULT_MAX_TOKENS = 256;

type Listeners = { [E in keyof PipelineEvents]: (event: PipelineEvents[E]) => void };

export interface PipelineParts {
  config: LlamaConfig;
  /** generation_config.json, when the model has one. */
  generationConfig: Record<string, unknown> | null;
  model: LlamaModel;
  tokenizer: LitheTokenizer;
  backend: Backend;
  /** What the backend is, in words, e.g. "wasm (2 threads; no GPU found)" (default: its name). */
  backendDescription?: string;
  /** Whether dispose() closes the backend (createPipeline made it for this pipeline). */
  ownsBackend?: boolean;
  cacheSize: number;
  /** Element type of the dense KV cache (plugins' caches may keep their own format). */
  kvDtype?: KVDType;
  createCache: (spec: KVCacheSpec) => KVCache;
  decodeStep: DecodeStep;
  processLogits: ((logits: Float32Array, tokens: readonly number[]) => void) | null;
}

/**
 * A running generation: iterate it for token events, or await `result` for the whole completion
 * (which runs it to the end if nobody iterates). Breaking out of the loop stops it like an abort:
 * `result` then holds the text so far with `finishReason: 'abort'`.
 */
export class Generation implements AsyncIterable<TokenEvent> {
  private started = false;
  private readonly finished: Promise<GenerationResult>;
  private resolve!: (r: GenerationResult) => void;
  private reject!: (e: unknown) => void;
  // Aborted by the caller's signal or by leaving the loop early; the run sees only this one.
  private readonly stop = new AbortController();

  constructor(
    private readonly run: (signal: AbortSignal) => AsyncGenerator<TokenEvent, GenerationResult>,
    private readonly signal?: AbortSignal,
  ) {
    this.finished = new Promise((res, rej) => ((this.resolve = res), (this.reject = rej)));
    // Errors reach the iterating caller; `result` only rejects for those who ask for it.
    this.finished.catch(() => {});
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TokenEvent> {
    if (this.started) throw new Error('a generation can be iterated only once');
    this.started = true;
    const onAbort = () => this.stop.abort(this.signal?.reason);
    if (this.signal?.aborted) onAbort();
    else this.signal?.addEventListener('abort', onAbort, { once: true });
    const it = this.run(this.stop.signal);
    let settled = false;
    try {
      while (true) {
        const step = await it.next();
        if (step.done) {
          settled = true;
          return this.resolve(step.value);
        }
        yield step.value;
      }
    } catch (e) {
      settled = true;
      this.reject(e);
      throw e;
    } finally {
      this.signal?.removeEventListener('abort', onAbort);
      // The caller broke out of its loop: stop at the next check and let the run finish its result.
      if (!settled) {
        this.stop.abort();
        try {
          let step = await it.next();
          while (!step.done) step = await it.next();
          this.resolve(step.value);
        } catch (e) {
          this.reject(e);
        }
      }
    }
  }

  /** The whole completion; runs the generation to its end if nobody iterates it. */
  get result(): Promise<GenerationResult> {
    if (!this.started) {
      void (async () => {
        for await (const _ of this) void _;
      })().catch(() => {});
    }
    return this.finished;
  }
}

/** A loaded model with its tokenizer, plugins and KV caches: what users generate with. */
export class Pipeline extends EventEmitter<Listeners> {
  readonly config: LlamaConfig;
  readonly model: LlamaModel;
  readonly tokenizer: LitheTokenizer;
  readonly backend: Backend;
  /** What `backend: 'auto'` chose and why, e.g. "wasm (2 threads; no GPU found)". */
  readonly backendDescription: string;
  /** Tokens each KV cache holds (prompt + completion). */
  readonly cacheSize: number;
  private readonly parts: PipelineParts;
  /**
   * The KV caches, preallocated and reused (one per generation running at the same time), with
   * prefix caching: a prompt that starts with tokens an idle cache holds (the previous turn of a
   * chat, a shared system prompt) prefills only the rest. `caches.prefixCaching = false` turns it
   * off; `caches.maxCaches` bounds the caches held (idle ones kept for their prefixes included).
   */
  readonly caches: KVCachePool;
  // Generations running at the same time share each model call: one pass over the weights per step.
  private readonly scheduler: BatchScheduler;
  private unbounded: boolean | undefined;

  constructor(parts: PipelineParts) {
    super();
    this.parts = parts;
    ({ config: this.config, model: this.model, tokenizer: this.tokenizer, backend: this.backend, cacheSize: this.cacheSize } = parts);
    this.scheduler = new BatchScheduler(this.model, { onStep: (info) => this.emit('batch', info) });
    this.caches = new KVCachePool((capacity) => this.createCache(Math.max(capacity, this.cacheSize)));
    this.backendDescription = parts.backendDescription ?? parts.backend.name;
  }

  /** A new KV cache of this pipeline's kind (the plugins' or the dense default). */
  createCache(capacity = this.cacheSize): KVCache {
    const c = this.config;
    // Only layers that compute keys and values have a cache layer (a KV layer map shares them).
    return this.parts.createCache({ backend: this.backend, nLayers: kvLayerCount(c.kvLayerMap ?? null, c.nLayers), nKVHeads: c.nKVHeads, headDim: c.headDim, capacity, dtype: this.parts.kvDtype ?? 'f16' });
  }

  /** Tokenizes a prompt the way `generate` does (with BOS). */
  encode(prompt: string): number[] {
    return this.tokenizer.encode(prompt);
  }

  /** Tokenizes a conversation the way `chat` does (the template writes the BOS itself). */
  encodeChat(messages: readonly ChatMessage[]): number[] {
    return this.tokenizer.encode(this.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true }), { addSpecialTokens: false });
  }

  /**
   * The model's own sampling defaults from generation_config.json (temperature, top-k, top-p);
   * `do_sample: false` means greedy, as in transformers. Spread user options over them.
   */
  get samplingDefaults(): SamplingOptions {
    const g = this.parts.generationConfig ?? {};
    const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
    const out: SamplingOptions = {};
    const temperature = g.do_sample === false ? 0 : num(g.temperature);
    if (temperature !== undefined) out.temperature = temperature;
    if (num(g.top_k) !== undefined) out.topK = num(g.top_k);
    if (num(g.top_p) !== undefined) out.topP = num(g.top_p);
    return out;
  }

  /**
   * Tokens a generation makes when `maxTokens` is not given: generation_config.json's
   * `max_new_tokens` when the model has one, else DEFAULT_MAX_TOKENS. The CLI and the server use it too.
   */
  get defaultMaxTokens(): number {
    const n = this.parts.generationConfig?.max_new_tokens;
    return typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? n : DEFAULT_MAX_TOKENS;
  }

  /**
   * Completes a prompt (text, or token ids used as given). Options left out (or undefined) take the
   * model's defaults: `samplingDefaults` from generation_config.json and `defaultMaxTokens`.
   */
  generate(prompt: string | readonly number[], opts: GenerateOptions = {}): Generation {
    const ids = typeof prompt === 'string' ? this.encode(prompt) : [...prompt];
    const full: GenerateOptions = { ...this.samplingDefaults, maxTokens: this.defaultMaxTokens };
    for (const [k, v] of Object.entries(opts)) if (v !== undefined) (full as Record<string, unknown>)[k] = v;
    return new Generation((signal) => this.run(ids, { ...full, signal }), opts.signal);
  }

  /**
   * Completes several prompts together: the generations run at the same time, so each decode step
   * is one batched forward over all sequences still running (finished ones leave the batch). Each
   * keeps its own options (one object for all, or one per prompt: sampling, seed, stop strings,
   * EOS, maxTokens, signal) and its own events, and gives the tokens it would give alone.
   * Any concurrent `generate` calls batch the same way; this only starts them together.
   */
  generateBatch(prompts: readonly (string | readonly number[])[], opts: GenerateOptions | readonly GenerateOptions[] = {}): Generation[] {
    if (Array.isArray(opts) && opts.length !== prompts.length) throw new Error(`generateBatch: ${prompts.length} prompts but ${opts.length} option objects; give one for all or one per prompt`);
    return prompts.map((p, i) => this.generate(p, Array.isArray(opts) ? opts[i] : (opts as GenerateOptions)));
  }

  /** Continues a conversation through the model's chat template. */
  chat(messages: readonly ChatMessage[], opts: GenerateOptions = {}): Generation {
    return this.generate(this.encodeChat(messages), opts);
  }

  /** Perplexity of `text` (tokenized whole, with BOS) in windows of `context` tokens. */
  async perplexity(text: string, { context = 512, onWindow }: { context?: number; onWindow?: (done: number, total: number) => void } = {}): Promise<PerplexityResult> {
    return this.withCache(Math.max(context, 2), (cache) => perplexity(this.model, cache, this.encode(text), context, onWindow));
  }

  /** Bytes of one KV cache of this pipeline at `cacheSize` (what one running generation holds), as the cache reports it. */
  get cacheBytes(): number {
    const { cache } = this.caches.acquire(this.cacheSize);
    this.caches.release(cache);
    return cache.bytes;
  }

  private async *run(ids: number[], opts: GenerateOptions): AsyncGenerator<TokenEvent, GenerationResult> {
    const { cache, cachedTokens } = this.caches.acquire(this.cacheSize, ids);
    this.backend.memory.resetPeak();
    const leave = this.scheduler.join();
    let held: number[] | undefined;
    try {
      const result = yield* generateTokens(
        {
          model: this.model,
          cache,
          tokenizer: this.tokenizer,
          decodeStep: this.parts.decodeStep,
          processLogits: this.parts.processLogits,
          emit: (event, payload) => this.emit(event, payload as never),
          peakMemory: () => this.backend.memory.snapshot().peakTotal,
          runner: this.scheduler,
          cachedTokens,
        },
        ids,
        opts,
      );
      held = [...ids, ...result.tokenIds];
      this.emit('memory', this.backend.memory.snapshot());
      return result;
    } finally {
      leave();
      this.caches.release(cache, held);
    }
  }

  private async withCache<T>(capacity: number, fn: (cache: KVCache) => Promise<T>): Promise<T> {
    const { cache } = this.caches.acquire(capacity);
    try {
      return await fn(cache);
    } finally {
      this.caches.release(cache);
    }
  }

  /**
   * Whether this pipeline's caches evict instead of filling up (a rolling window such as
   * @lithe/streaming): prompts and completions may then run past `cacheSize`.
   */
  get unboundedContext(): boolean {
    if (this.unbounded === undefined) {
      // Asked once: the cache made to answer is kept for the next generation.
      const { cache } = this.caches.acquire(this.cacheSize);
      this.caches.release(cache);
      this.unbounded = cache.unbounded === true;
    }
    return this.unbounded;
  }

  /** Frees the model, caches and activations, and the backend if the pipeline made it. */
  dispose(): void {
    this.caches.dispose();
    this.model.dispose();
    this.removeAllListeners();
    if (this.parts.ownsBackend) void this.parts.backend.close?.();
  }
}
