import type { AttentionParams, KVCacheLayer, Tensor } from '@lithe/core';
import { StreamingLayer } from './streaming-kv-cache.js';

/**
 * The attention kernel of the streaming cache kind, on every backend: the layer's keys already carry
 * the StreamingLLM positions, so this runs the kernel of the cache underneath (core's dense kernel,
 * or kv-quant's quantized one, on cpu, wasm or webgpu) over the kept slots.
 */
export function streamingAttention(q: Tensor, cache: KVCacheLayer, p: AttentionParams, out: Tensor): void {
  if (!(cache instanceof StreamingLayer)) throw new Error(`streaming attention needs a streaming cache layer, got kind '${cache.kind}'`);
  cache.attend(q, p, out);
}
