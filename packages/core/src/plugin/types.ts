import type { Backend } from '../backend/backend.js';
import type { KernelRegistry } from '../backend/kernel-registry.js';
import type { KernelSignatures } from '../backend/kernel-signatures.js';
import type { KVCache, KVCacheSpec } from '../kv-cache/kv-cache.js';
import type { LlamaConfig } from '../model/config.js';
import type { LlamaModel } from '../model/llama.js';
import type { Weight, WeightInfo, WeightRequest, WeightSource } from '../model/weights.js';
import type { Tensor } from '../tensor/tensor.js';
import type { PipelineEvents } from '../generate/events.js';

/** What every hook sees: the pipeline's backend, its own kernel registry and the model config. */
export interface PluginContext {
  readonly backend: Backend;
  /** The pipeline's registry (a child of the global one): kernels added here stay in this pipeline. */
  readonly kernels: KernelRegistry;
  readonly config: LlamaConfig;
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
}

type Observers = { [E in keyof PipelineEvents]?: (event: PipelineEvents[E]) => void };

/**
 * A plugin is a named object of typed hooks. How each hook runs:
 * - setup, patchModel: every plugin, in order (sequential).
 * - transformWeights: waterfall, each plugin receives the previous one's tensor; a linear weight
 *   turned into a module by one plugin is final (later plugins are not called for it).
 * - loadWeight: first result wins (a plugin that does not know a weight returns undefined).
 * - createKVCache, attention: exclusive; a second provider must name the first in `composes`, and
 *   then wraps it (createKVCache receives `next`).
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
