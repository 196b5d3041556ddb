import type { Backend } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';

/** Storage of the dense cache's keys and values: f16 (default, half the bytes) or f32. */
export type KVDType = 'f16' | 'f32';

export interface KVCacheSpec {
  backend: Backend;
  nLayers: number;
  nKVHeads: number;
  headDim: number;
  /** Tokens the cache holds, fixed at creation (torchao's cache_size), independent of generation. */
  capacity: number;
  /** Element type of core's dense cache (default f16); caches with their own format may ignore it. */
  dtype?: KVDType;
}

/**
 * A block-quantized KV layer described for any attention kernel, whatever its cache kind: per token
 * and KV head, `headDim` codes and f16 parameters, so x = c · scale + offset where
 * offset = −zero · scale ('asymmetric', or the zero slot itself when scale is 0: a constant row) or 0
 * ('symmetric'). Memory layout (every tensor in the layer's backend, [capacity, ...] rows):
 * - keyCodes, valueCodes: [capacity, nKVHeads · headDim · bits / 8] bytes; token j, head g starts at
 *   byte j · nKVHeads · headDim · bits / 8 + g · headDim · bits / 8. 8 bits: one code a byte (u8
 *   asymmetric, i8 symmetric). 4 bits: element 2i in the low nibble, 2i + 1 in the high one
 *   (unsigned asymmetric, two's complement symmetric).
 * - keyParams, valueParams: [capacity, nKVHeads · paramsPerHead] f16; token j, head g at element
 *   (j · nKVHeads + g) · paramsPerHead: scale, then zero (asymmetric only).
 */
export interface QuantizedKVLayout {
  readonly bits: 8 | 4;
  readonly mode: 'asymmetric' | 'symmetric';
  /** f16 values per token per KV head: 2 (scale, zero) asymmetric, 1 (scale) symmetric. */
  readonly paramsPerHead: 1 | 2;
  readonly nKVHeads: number;
  readonly headDim: number;
  readonly keyCodes: Tensor;
  readonly valueCodes: Tensor;
  readonly keyParams: Tensor;
  readonly valueParams: Tensor;
}

/**
 * The attention kernel variant that reads every layer exposing `quantized`, whatever its kind: a
 * plugin registers its kernel under this variant (AttentionProvider `readsQuantized`), and the model
 * runs it for such layers instead of the kind's own kernel (which the reader may still call back).
 */
export const QUANTIZED_ATTENTION = 'quantized';

/**
 * One layer's slice of the cache. `kind` selects the attention kernel variant, so a cache in a new
 * format (quantized, condensed, rolling) brings its own attention reader.
 */
export interface KVCacheLayer {
  readonly kind: string;
  /** Tokens stored in this layer, including those written by the forward pass in progress. */
  readonly length: number;
  /** Dense caches expose [capacity, nKVHeads * headDim] tensors (f16 or f32); other kinds may not. */
  readonly keys?: Tensor;
  readonly values?: Tensor;
  /** Block-quantized layers describe their codes and scales here, so any attention kernel may read them. */
  readonly quantized?: QuantizedKVLayout;
}

/**
 * The KV cache contract that technique packages replace. A forward pass over T new tokens calls
 * `write` once per layer (keys after RoPE) and `commit(T)` when every layer has been written.
 */
export interface KVCache {
  readonly kind: string;
  /** Tokens the cache can hold; for an `unbounded` cache, the slots it holds them in. */
  readonly capacity: number;
  /**
   * True for a cache that evicts instead of filling up (a rolling window, StreamingLLM): generation
   * and scoring may run past `capacity`, and `length` counts every token fed, evicted ones included.
   */
  readonly unbounded?: boolean;
  readonly nLayers: number;
  /** Committed tokens. */
  readonly length: number;
  /** Bytes of storage held, scales and metadata included. */
  readonly bytes: number;
  layer(index: number): KVCacheLayer;
  /** Stores keys and values [T, nKVHeads * headDim] for positions [length, length + T). */
  write(layer: number, keys: Tensor, values: Tensor): void;
  commit(tokens: number): void;
  /**
   * Most of the next tokens one forward chunk may write (default: no limit). The model splits longer
   * inputs: a rolling cache returns 1 once it evicts, so each token attends to exactly its own window.
   */
  writeLimit?(): number;
  /**
   * Stores keys and values [T, nKVHeads * headDim] in slots [slot, slot + T) of one layer, outside
   * the append order: `length` and `commit` are untouched, the layer's readable length grows to cover
   * the slots. A cache that wraps another (a ring buffer over a quantized cache) writes through this.
   */
  writeSlots?(layer: number, slot: number, keys: Tensor, values: Tensor): void;
  /** Copies the token in slot `from` of one layer over slot `to` (a ring buffer compacting after a rollback). */
  moveSlot?(layer: number, from: number, to: number): void;
  /**
   * Makes this cache hold the first `tokens` tokens of `source`, a cache of the same kind, element
   * type and width: their keys and values are copied and `length` becomes `tokens`. Prefix caching
   * gives a new generation the prefix another generation's cache holds this way. Returns false when
   * `source` is not one this cache can copy from (the prefix is prefilled instead).
   */
  copyPrefix?(source: KVCache, tokens: number): boolean;
  /** Rolls back to `length` tokens (speculative decoding rejects drafted tokens this way). */
  truncate(length: number): void;
  reset(): void;
  dispose(): void;
}

export type KVCacheFactory = (spec: KVCacheSpec) => KVCache;
