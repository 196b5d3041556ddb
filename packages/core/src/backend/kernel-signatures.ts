import type { KVCacheLayer } from '../kv-cache/kv-cache.js';
import type { Tensor } from '../tensor/tensor.js';

export interface AttentionParams {
  nHeads: number;
  nKVHeads: number;
  headDim: number;
  /** Softmax scale, usually 1/sqrt(headDim). */
  scale: number;
  /** Absolute position of the first query row; row t attends to cache positions [0, startPos + t]. */
  startPos: number;
  /** Sliding window (Mistral): row t attends only to the last `window` positions. */
  window?: number;
  /**
   * Masks the query's own position (LCKV's no_diag, for a layer whose KV layer lies above it and
   * has not seen this token yet): row t attends to positions before startPos + t, so the cache need
   * only hold startPos + T - 1 tokens; a row left with nothing to attend to outputs zeros.
   */
  noDiagonal?: boolean;
}

/**
 * The kernel contracts, declared once. Every kernel writes into an `out` tensor the caller owns so
 * that the hot loop allocates nothing. Activations are f32 [rows, cols] unless said otherwise.
 */
export interface KernelSignatures {
  /** out[t] = table[ids[t]]; table [vocab, dim] in any float dtype. */
  embedding(table: Tensor, ids: Int32Array, out: Tensor): void;
  /** out = x · weightᵀ + bias; x [T, in], weight [out, in] (HF layout), bias [out] or null. */
  linear(x: Tensor, weight: Tensor, bias: Tensor | null, out: Tensor): void;
  /** Row-wise RMSNorm: out = x / sqrt(mean(x²) + eps) * weight. */
  rmsNorm(x: Tensor, weight: Tensor, eps: number, out: Tensor): void;
  /**
   * Rotary embedding, HF "rotate_half" layout, on x [T, nHeads * headDim] in place.
   * invFreq has headDim/2 entries (scaling such as Llama 3.1's already applied).
   */
  rope(x: Tensor, nHeads: number, positions: Int32Array, invFreq: Float32Array): void;
  /**
   * Copies f32 `src` into `dst` from element `dstOffset`, converting to dst's dtype (the variant;
   * f16 rounds to nearest even). The dense KV cache stores its keys and values this way.
   */
  convert(src: Tensor, dst: Tensor, dstOffset: number): void;
  /** Causal GQA attention of q [T, nHeads * headDim] over a cache layer (f32 or f16 keys/values); out like q. */
  attention(q: Tensor, cache: KVCacheLayer, params: AttentionParams, out: Tensor): void;
  /** out = silu(gate) * up. */
  swiglu(gate: Tensor, up: Tensor, out: Tensor): void;
  /** out = a + b (out may be a). */
  add(a: Tensor, b: Tensor, out: Tensor): void;
  /** Softmax over the last dimension. */
  softmax(x: Tensor, out: Tensor): void;
  /** Index of the largest value of each row (first on ties) into out (i32 [rows]); -1 for a row holding a NaN. */
  argmax(x: Tensor, out: Tensor): void;
}
