import type { Backend } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';

export interface KVCacheSpec {
  backend: Backend;
  nLayers: number;
  nKVHeads: number;
  headDim: number;
  /** Tokens the cache holds, fixed at creation (torchao's cache_size), independent of generation. */
  capacity: number;
}

/**
 * One layer's slice of the cache. `kind` selects the attention kernel variant, so a cache in a new
 * format (quantized, condensed, rolling) brings its own attention reader.
 */
export interface KVCacheLayer {
  readonly kind: string;
  /** Tokens stored in this layer, including those written by the forward pass in progress. */
  readonly length: number;
  /** Dense caches expose [capacity, nKVHeads * headDim] tensors; other kinds may not. */
  readonly keys?: Tensor;
  readonly values?: Tensor;
}

/**
 * The KV cache contract that technique packages replace. A forward pass over T new tokens calls
 * `write` once per layer (keys after RoPE) and `commit(T)` when every layer has been written.
 */
export interface KVCache {
  readonly kind: string;
  readonly capacity: number;
  readonly nLayers: number;
  /** Committed tokens. */
  readonly length: number;
  /** Bytes of storage held, scales and metadata included. */
  readonly bytes: number;
  layer(index: number): KVCacheLayer;
  /** Stores keys and values [T, nKVHeads * headDim] for positions [length, length + T). */
  write(layer: number, keys: Tensor, values: Tensor): void;
  commit(tokens: number): void;
  /** Rolls back to `length` tokens (speculative decoding rejects drafted tokens this way). */
  truncate(length: number): void;
  reset(): void;
  dispose(): void;
}

export type KVCacheFactory = (spec: KVCacheSpec) => KVCache;
