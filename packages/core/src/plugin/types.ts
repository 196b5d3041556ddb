import type { Backend } from '../backend/backend.js';
import type { KernelRegistry } from '../backend/kernel-registry.js';
import type { KernelSignatures } from '../backend/kernel-signatures.js';
import type { KVCache, KVCacheSpec } from '../kv-cache/kv-cache.js';
import type { LlamaConfig } from '../model/config.js';
import type { LlamaModel } from '../model/llama.js';
import type { Weight, WeightInfo, WeightRequest, WeightSource } from '../model/weights.js';
import type { Tensor } from '../tensor/tensor.js';
import type { PipelineEvents } from '../generate/events.js';
import type { LitheTokenizer } from '../io/tokenizer.js';

/** What every hook sees: the pipeline's backend, its own kernel registry and the model config. */
export interface PluginContext {
  readonly backend: Backend;
  /** The pipeline's registry (a child of the global one): kernels added here stay in this pipeline. */
  readonly kernels: KernelRegistry;
  readonly config: LlamaConfig;
  /** The model's tokenizer (in a pipeline; absent where a plugin's parts run on their own, as in tests). */
  readonly tokenizer?: LitheTokenizer;
}

/** State a decode step works on; `forward` runs the model and returns f32 logits rows. */
export interface DecodeState {
  readonly model: LlamaModel;
  readonly cache: KVCache;
  /** Prompt and generated ids so far; the last one has not been fed to the model yet. */
  readonly tokens: readonly number[];
  /** Runs the model on `ids`; a one-row result is a buffer reused by the next call. */
  forward(ids: readonly number[], logits?: 'last' | 'all'): Promise<Float32Array>;
  /** Logits processors, then the sampler: the pipeline's way of choosing a token. */
  sample(logits: Float32Array): number;
  /**
   * Runs the model on `ids` and chooses the next token: `sample(await forward(ids))`, or the argmax
   * taken on the device where the backend prefers that and nothing else needs the logits.
   */
  next(ids: readonly number[]): Promise<number>;
  /** Tokens the generation may still emit (maxTokens minus those emitted); return no more than this. */
  readonly remaining: number;
  /** The generation's abort signal: a step that runs several forwards may stop early. */
  readonly signal?: AbortSignal;
  /** Sampling is greedy (temperature 0): `distribution` is then one-hot at the token `sample` would choose. */
  readonly greedy: boolean;
  /**
   * The exact distribution `sample` would draw the next token from, for steps that choose tokens
   * themselves (speculative decoding): the logits processors run on `logits` in place with `context`
   * (the ids before the token being chosen), then repetition penalty, temperature, top-k, top-p,
   * min-p, renormalized into `out` (one entry per token, zero where filtered out).
   */
  distribution(logits: Float32Array, context: readonly number[], out?: Float64Array): Float64Array;
  /** Draws a token from `probs` (non-negative weights) with the generation's seeded RNG. */
  draw(probs: ArrayLike<number>): number;
  /** A uniform number in [0, 1) from the generation's seeded RNG. */
  random(): number;
  /**
   * Tells the generation that a step chose `id` from `logits` (as processed by `distribution`)
   * without `sample`: call it once per returned token, in order, so `logprobs` stay right.
   */
  chose(logits: Float32Array, id: number): void;
  /** What steps measured, by plugin name; each `step` event and the result carry a copy. */
  readonly stats: Record<string, unknown>;
  /** Registers cleanup run once when the generation ends: finished, stopped early, or failed. */
  onEnd(fn: () => void): void;
}

/** Produces the next token(s); speculative decoding returns several per step. */
export type DecodeStep = (state: DecodeState) => Promise<number[]>;

/** `next` builds the cache the previous provider (or core's dense cache) would have built. */
export type KVCacheProvider = (spec: KVCacheSpec, ctx: PluginContext, next: (spec: KVCacheSpec) => KVCache) => KVCache;

export interface AttentionProvider {
  /** The KV cache kind this attention reads ('dense' for core's cache). */
  kind?: string;
  /** One kernel per backend name. */
  kernels: Partial<Record<string, KernelSignatures['attention']>>;
  /**
   * Kernels (per backend) that read any block-quantized layer (`KVCacheLayer.quantized`), whatever
   * plugin made the cache: registered as the QUANTIZED_ATTENTION variant, they run for such layers
   * in place of the kind's own kernel. They receive that kernel via the registry (variant
   * `layer.kind`) to fall back to. Not exclusive with the cache plugin's provider, so the order of
   * plugins does not matter; two plugins reading quantized layers must compose like any provider.
   */
  readsQuantized?: Partial<Record<string, KernelSignatures['attention']>>;
}

type Observers = { [E in keyof PipelineEvents]?: (event: PipelineEvents[E]) => void };

/**
 * A plugin is a named object of typed hooks. How each hook runs:
 * - readConfig: first result wins (a plugin that does not know the model returns undefined).
 * - setup, patchModel: every plugin, in order (sequential).
 * - transformWeights: waterfall, each plugin receives the previous one's tensor; a linear weight
 *   turned into a module by one plugin is final (later plugins are not called for it).
 * - loadWeight: first result wins (a plugin that does not know a weight returns undefined).
 * - createKVCache, attention: exclusive; a second provider must name the first in `composes`, and
 *   then wraps it (createKVCache receives `next`). An attention provider's `readsQuantized` kernels
 *   form their own exclusive group (the QUANTIZED_ATTENTION variant) and take over block-quantized
 *   layers of every kind, so e.g. flash-attn reads kv-quant's caches in either plugin order.
 * - wrapDecode: each plugin wraps the step built so far.
 * - processLogits: every plugin, in order, in place on the logits.
 * - on: observers of the pipeline's events.
 */
export interface LithePlugin {
  name: string;
  /** Ordering: 'pre' plugins run first, 'post' plugins last, others in the order given. */
  enforce?: 'pre' | 'post';
  /** Plugins that must be present too. */
  dependencies?: string[];
  /** Plugins that cannot be used together with this one. */
  conflicts?: string[];
  /** Plugins whose exclusive hooks this one knowingly wraps (e.g. streaming over kv-quant). */
  composes?: string[];
  /**
   * Reads a config.json core does not know (a Llama variant such as LCKV's 'lckv-llama'), first
   * result wins: the normalized config, or undefined to leave it to core. `parse` is core's reader.
   */
  readConfig?(raw: Record<string, unknown>, parse: (raw: Record<string, unknown>) => LlamaConfig, generationConfig: Record<string, unknown> | null): LlamaConfig | undefined;
  setup?(ctx: PluginContext): void | Promise<void>;
  transformWeights?(tensor: Tensor, info: WeightInfo, ctx: PluginContext): Weight | Promise<Weight>;
  /** Loads a weight stored in a layout only this plugin knows (a pre-quantized checkpoint). */
  loadWeight?(request: WeightRequest, source: WeightSource, ctx: PluginContext): Weight | undefined | Promise<Weight | undefined>;
  patchModel?(model: LlamaModel, ctx: PluginContext): void | Promise<void>;
  createKVCache?: KVCacheProvider;
  attention?: AttentionProvider;
  wrapDecode?(next: DecodeStep, ctx: PluginContext): DecodeStep;
  processLogits?(logits: Float32Array, tokens: readonly number[], ctx: PluginContext): void;
  on?: Observers;
}
