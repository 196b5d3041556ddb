import type { EventEmitter } from 'eventemitter3';
import type { PipelineEvents } from '../generate/events.js';
import { QUANTIZED_ATTENTION, type KVCache, type KVCacheSpec } from '../kv-cache/kv-cache.js';
import { parseConfig, type LlamaConfig } from '../model/config.js';
import type { LlamaModel } from '../model/llama.js';
import { isLinearModule, type Weight, type WeightInfo, type WeightLoader } from '../model/weights.js';
import type { Tensor } from '../tensor/tensor.js';
import type { DecodeStep, LithePlugin, PluginContext } from './types.js';

const EXCLUSIVE = ['createKVCache', 'attention'] as const;
const ORDER = { pre: 0, undefined: 1, post: 2 } as const;

/**
 * Validates a plugin list once, at registration, and runs each hook the way its kind says.
 * Everything a user can get wrong (duplicate names, missing dependencies, conflicts, two providers
 * of one exclusive hook) fails here with a sentence that says what to do.
 */
export class PluginDriver {
  readonly plugins: readonly LithePlugin[];

  constructor(plugins: readonly LithePlugin[]) {
    const names = new Set<string>();
    for (const p of plugins) {
      if (!p || typeof p.name !== 'string' || !p.name) throw new Error('every plugin needs a non-empty `name`');
      if (names.has(p.name)) throw new Error(`plugin '${p.name}' is listed twice; remove one of them`);
      names.add(p.name);
    }
    for (const p of plugins) {
      for (const dep of p.dependencies ?? []) {
        if (!names.has(dep)) throw new Error(`plugin '${p.name}' needs plugin '${dep}'; add ${dep}() to the plugins list`);
      }
      for (const other of p.conflicts ?? []) {
        if (names.has(other)) throw new Error(`plugins '${p.name}' and '${other}' cannot be used together; remove one of them`);
      }
    }
    this.plugins = [...plugins].sort((a, b) => ORDER[`${a.enforce}`] - ORDER[`${b.enforce}`]);
    for (const hook of EXCLUSIVE) this.checkExclusive(hook);
  }

  private checkExclusive(hook: (typeof EXCLUSIVE)[number]): void {
    const providers = this.plugins.filter((p) => p[hook]);
    const byKind = new Map<string, LithePlugin[]>();
    for (const p of providers) {
      const kind = hook === 'attention' ? (p.attention?.kind ?? 'dense') : '';
      byKind.set(kind, [...(byKind.get(kind) ?? []), p]);
    }
    if (hook === 'attention') byKind.set(QUANTIZED_ATTENTION, providers.filter((p) => p.attention?.readsQuantized));
    for (const group of byKind.values()) {
      for (let i = 1; i < group.length; i++) {
        const [inner, outer] = [group[i - 1], group[i]];
        if (!outer.composes?.includes(inner.name)) {
          throw new Error(
            `plugins '${inner.name}' and '${outer.name}' both provide ${hook}; only one may, unless '${outer.name}' declares composes: ['${inner.name}']`,
          );
        }
      }
    }
  }

  /** The model's config: the first plugin that reads it, else core's parseConfig. */
  readConfig(raw: Record<string, unknown>, generationConfig: Record<string, unknown> | null): LlamaConfig {
    const parse = (r: Record<string, unknown>) => parseConfig(r, generationConfig);
    for (const p of this.plugins) {
      const c = p.readConfig?.(raw, parse, generationConfig);
      if (c) return c;
    }
    return parse(raw);
  }

  async setup(ctx: PluginContext): Promise<void> {
    for (const p of this.plugins) {
      await p.setup?.(ctx);
      if (p.attention) {
        for (const [backend, kernel] of Object.entries(p.attention.kernels)) {
          if (kernel) ctx.kernels.register(backend, 'attention', kernel, { variant: p.attention.kind ?? 'dense', override: true });
        }
        for (const [backend, kernel] of Object.entries(p.attention.readsQuantized ?? {})) {
          if (kernel) ctx.kernels.register(backend, 'attention', kernel, { variant: QUANTIZED_ATTENTION, override: true });
        }
      }
    }
  }

  /** Waterfall over transformWeights, or undefined when no plugin transforms weights. */
  weightTransform(ctx: PluginContext): ((t: Tensor, info: WeightInfo) => Promise<Weight>) | undefined {
    const hooks = this.plugins.filter((p) => p.transformWeights);
    if (hooks.length === 0) return undefined;
    return async (tensor, info) => {
      let w: Weight = tensor;
      for (const p of hooks) {
        if (isLinearModule(w)) break;
        w = await p.transformWeights!(w, info, ctx);
      }
      return w;
    };
  }

  /** The plugins' weight loaders, first result wins; undefined when no plugin loads weights. */
  weightLoader(ctx: PluginContext): WeightLoader | undefined {
    const hooks = this.plugins.filter((p) => p.loadWeight);
    if (hooks.length === 0) return undefined;
    return async (request, source) => {
      for (const p of hooks) {
        const w = await p.loadWeight!(request, source, ctx);
        if (w) return w;
      }
      return undefined;
    };
  }

  async patchModel(model: LlamaModel, ctx: PluginContext): Promise<void> {
    for (const p of this.plugins) await p.patchModel?.(model, ctx);
  }

  /** The KV cache factory: core's dense cache, replaced or wrapped by each provider in order. */
  kvCacheFactory(base: (spec: KVCacheSpec) => KVCache, ctx: PluginContext): (spec: KVCacheSpec) => KVCache {
    let factory = base;
    for (const p of this.plugins) {
      if (!p.createKVCache) continue;
      const provider = p.createKVCache;
      const next = factory;
      factory = (spec) => provider(spec, ctx, next);
    }
    return factory;
  }

  wrapDecode(step: DecodeStep, ctx: PluginContext): DecodeStep {
    return this.plugins.reduce((s, p) => (p.wrapDecode ? p.wrapDecode(s, ctx) : s), step);
  }

  /** Subscribes each plugin's observers to the pipeline's events. */
  observe(emitter: EventEmitter<{ [E in keyof PipelineEvents]: (event: PipelineEvents[E]) => void }>): void {
    for (const p of this.plugins) {
      for (const [event, fn] of Object.entries(p.on ?? {})) {
        if (fn) emitter.on(event as keyof PipelineEvents, fn as (event: unknown) => void);
      }
    }
  }

  /** The logits processors in order, or null when there are none (saves a call per token). */
  logitsProcessor(ctx: PluginContext): ((logits: Float32Array, tokens: readonly number[]) => void) | null {
    const hooks = this.plugins.filter((p) => p.processLogits);
    if (hooks.length === 0) return null;
    return (logits, tokens) => {
      for (const p of hooks) p.processLogits!(logits, tokens, ctx);
    };
  }
}
