import { EventEmitter } from 'eventemitter3';
import type { Backend } from '../backend/backend.js';
import type { ChatMessage } from '../io/chat-template.js';
import type { LitheTokenizer } from '../io/tokenizer.js';
import type { KVCache, KVCacheSpec } from '../kv-cache/kv-cache.js';
import type { LlamaConfig } from '../model/config.js';
import type { LlamaModel } from '../model/llama.js';
import type { GenerationResult, PipelineEvents, TokenEvent } from '../generate/events.js';
import { generateTokens, type GenerateOptions } from '../generate/generate.js';
import { perplexity, type PerplexityResult } from '../generate/perplexity.js';
import type { SamplingOptions } from '../generate/sampling.js';
import type { DecodeStep } from '../plugin/types.js';

type Listeners = { [E in keyof PipelineEvents]: (event: PipelineEvents[E]) => void };

export interface PipelineParts {
  config: LlamaConfig;
  /** generation_config.json, when the model has one. */
  generationConfig: Record<string, unknown> | null;
  model: LlamaModel;
  tokenizer: LitheTokenizer;
  backend: Backend;
  /** Whether dispose() closes the backend (createPipeline made it for this pipeline). */
  ownsBackend?: boolean;
  cacheSize: number;
  createCache: (spec: KVCacheSpec) => KVCache;
  decodeStep: DecodeStep;
  processLogits: ((logits: Float32Array, tokens: readonly number[]) => void) | null;
}

/**
 * A running generation: iterate it for token events, or await `result` for the whole completion
 * (which runs it to the end if nobody iterates).
 */
export class Generation implements AsyncIterable<TokenEvent> {
  private started = false;
  private readonly finished: Promise<GenerationResult>;
  private resolve!: (r: GenerationResult) => void;
  private reject!: (e: unknown) => void;

  constructor(private readonly run: () => AsyncGenerator<TokenEvent, GenerationResult>) {
    this.finished = new Promise((res, rej) => ((this.resolve = res), (this.reject = rej)));
    // Errors reach the iterating caller; `result` only rejects for those who ask for it.
    this.finished.catch(() => {});
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TokenEvent> {
    if (this.started) throw new Error('a generation can be iterated only once');
    this.started = true;
    const it = this.run();
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
      // The caller broke out of its loop: end the run so its KV cache is released.
      if (!settled) {
        await it.return(undefined as never);
        this.reject(new Error('the generation was stopped before it finished'));
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
  /** Tokens each KV cache holds (prompt + completion). */
  readonly cacheSize: number;
  private readonly parts: PipelineParts;
  // Caches are preallocated and reused: one per generation running at the same time.
  private readonly idle: KVCache[] = [];

  constructor(parts: PipelineParts) {
    super();
    this.parts = parts;
    ({ config: this.config, model: this.model, tokenizer: this.tokenizer, backend: this.backend, cacheSize: this.cacheSize } = parts);
  }

  /** A new KV cache of this pipeline's kind (the plugins' or the dense default). */
  createCache(capacity = this.cacheSize): KVCache {
    const c = this.config;
    return this.parts.createCache({ backend: this.backend, nLayers: c.nLayers, nKVHeads: c.nKVHeads, headDim: c.headDim, capacity });
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

  /** Completes a prompt (text, or token ids used as given). */
  generate(prompt: string | readonly number[], opts: GenerateOptions = {}): Generation {
    const ids = typeof prompt === 'string' ? this.encode(prompt) : [...prompt];
    return new Generation(() => this.run(ids, opts));
  }

  /** Continues a conversation through the model's chat template. */
  chat(messages: readonly ChatMessage[], opts: GenerateOptions = {}): Generation {
    return this.generate(this.encodeChat(messages), opts);
  }

  /** Perplexity of `text` (tokenized whole, with BOS) in windows of `context` tokens. */
  async perplexity(text: string, { context = 512, onWindow }: { context?: number; onWindow?: (done: number, total: number) => void } = {}): Promise<PerplexityResult> {
    return this.withCache(Math.max(context, 2), (cache) => perplexity(this.model, cache, this.encode(text), context, onWindow));
  }

  private async *run(ids: number[], opts: GenerateOptions): AsyncGenerator<TokenEvent, GenerationResult> {
    const cache = this.acquire(this.cacheSize);
    this.backend.memory.resetPeak();
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
        },
        ids,
        opts,
      );
      this.emit('memory', this.backend.memory.snapshot());
      return result;
    } finally {
      this.release(cache);
    }
  }

  private async withCache<T>(capacity: number, fn: (cache: KVCache) => Promise<T>): Promise<T> {
    const cache = this.acquire(capacity);
    try {
      return await fn(cache);
    } finally {
      this.release(cache);
    }
  }

  private acquire(capacity: number): KVCache {
    const i = this.idle.findIndex((c) => c.capacity >= capacity);
    const cache = i >= 0 ? this.idle.splice(i, 1)[0] : this.createCache(Math.max(capacity, this.cacheSize));
    cache.reset();
    return cache;
  }

  private release(cache: KVCache): void {
    cache.reset();
    this.idle.push(cache);
  }

  /** Frees the model, caches and activations, and the backend if the pipeline made it. */
  dispose(): void {
    for (const c of this.idle.splice(0)) c.dispose();
    this.model.dispose();
    this.removeAllListeners();
    if (this.parts.ownsBackend) void this.parts.backend.close?.();
  }
}
