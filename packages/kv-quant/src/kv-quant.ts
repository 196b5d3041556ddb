import { definePlugin } from '@lithe/core';
import { kvQuantFormat, type KvQuantOptions } from './format.js';
import { attentionQuantized } from './kernels/cpu-attention.js';
import { attentionQuantizedWebGpu } from './kernels/webgpu.js';
import { QuantizedKVCache } from './quantized-kv-cache.js';

/**
 * The kv-quant plugin: provides an int8 or int4 KV cache and the attention kernel that reads it.
 *
 * ```ts
 * const pipeline = await createPipeline({ model, cacheSize: 8192, plugins: [kvQuant({ bits: 8 })] });
 * ```
 *
 * The cache replaces core's dense one (another cache plugin, e.g. a rolling window, may wrap it by
 * declaring `composes: ['kv-quant']`). The attention kernel is registered as the variant named by
 * the cache's kind (`int8-asym`, `int8-sym`, `int4-asym`, `int4-sym`), so dense caches elsewhere keep
 * core's kernel.
 */
export const kvQuant = definePlugin((options: KvQuantOptions) => {
  const format = kvQuantFormat(options);
  return {
    name: 'kv-quant',
    createKVCache: (spec) => new QuantizedKVCache(spec, format),
    attention: { kind: format.kind, kernels: { cpu: attentionQuantized, wasm: attentionQuantized, webgpu: attentionQuantizedWebGpu } },
  };
});
