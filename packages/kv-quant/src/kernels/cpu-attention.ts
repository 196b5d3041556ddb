import { dot, type AttentionParams, type KVCacheLayer, type Tensor } from '@lithe/core';
import { isQuantizedLayer } from '../quantized-kv-cache.js';
import { rowAffine, unpackCodes } from '../quantize.js';

// Scratch shared by calls (kernels run one at a time on a thread): O(S) scores and one row of codes.
let scores = new Float32Array(0);
let row = new Float32Array(0);
let qsum = new Float64Array(0);
let bias = new Float64Array(0);
const affine = new Float64Array(2);

/**
 * Causal grouped-query attention over an int8/int4 cache, with the semantics of core's dense
 * kernel (implicit causal mask, GQA, sliding window, startPos, noDiagonal). Nothing is dequantized ahead of
 * time: each cache row's codes are read into a headDim-sized scratch and the row's affine map
 * x = c · a + b (a = scale, b = −zero · scale) is folded into the arithmetic:
 *   q · k = a · (q · c) + b · Σq        and        Σ_j w_j v_j = Σ_j (w_j a_j) c_j + Σ_j w_j b_j.
 * A row's codes are unpacked once and used by every query head of its KV group. Memory: O(S)
 * scores per head of the group, never S × S and never a full-precision cache.
 */
export function attentionQuantized(q: Tensor, cache: KVCacheLayer, p: AttentionParams, out: Tensor): void {
  if (!isQuantizedLayer(cache)) throw new Error(`quantized attention needs a kv-quant cache layer, got kind '${cache.kind}'`);
  const { nHeads, nKVHeads, headDim: D, scale, startPos } = p;
  if (nKVHeads !== cache.nKVHeads || D !== cache.headDim) {
    throw new Error(`quantized attention: cache is ${cache.nKVHeads} KV heads × ${cache.headDim}, params say ${nKVHeads} × ${D}`);
  }
  const { format } = cache;
  const qs = q.handle as Float32Array;
  const os = out.handle as Float32Array;
  const kc = cache.keyCodes.handle as Uint8Array | Int8Array;
  const vc = cache.valueCodes.handle as Uint8Array | Int8Array;
  const kp = cache.keyParams.handle as Uint16Array;
  const vp = cache.valueParams.handle as Uint16Array;
  const rows = q.size / (nHeads * D);
  const group = nHeads / nKVHeads;
  const S = startPos + rows;
  const diag = p.noDiagonal ? 1 : 0;
  if (S - diag > cache.length) throw new Error(`attention: cache holds ${cache.length} tokens, queries reach ${S - diag}`);
  if (scores.length < group * S) scores = new Float32Array(Math.max(group * S, scores.length * 2));
  if (row.length < D) row = new Float32Array(D);
  if (qsum.length < group) {
    qsum = new Float64Array(group);
    bias = new Float64Array(group);
  }

  const rowBytes = (nKVHeads * D * format.bits) / 8;
  const headBytes = (D * format.bits) / 8;
  const pp = format.paramsPerHead;

  for (let t = 0; t < rows; t++) {
    const last = startPos + t - diag;
    const first = p.window ? Math.max(0, startPos + t - p.window + 1) : 0;
    for (let g = 0; g < nKVHeads; g++) {
      const h0 = g * group;
      for (let i = 0; i < group; i++) {
        const qo = (t * nHeads + h0 + i) * D;
        let s = 0;
        for (let d = 0; d < D; d++) s += qs[qo + d];
        qsum[i] = s;
      }

      // Scores: one row of key codes at a time, shared by the group's query heads.
      for (let j = first; j <= last; j++) {
        unpackCodes(format, kc, j * rowBytes + g * headBytes, D, row);
        rowAffine(format, kp, (j * nKVHeads + g) * pp, affine);
        const a = affine[0] * scale;
        const b = affine[1] * scale;
        for (let i = 0; i < group; i++) {
          const qo = (t * nHeads + h0 + i) * D;
          scores[i * S + j] = a * dot(qs, qo, row, 0, D) + b * qsum[i];
        }
      }

      // Softmax per head, in place.
      for (let i = 0; i < group; i++) {
        const base = i * S;
        let max = -Infinity;
        for (let j = first; j <= last; j++) if (scores[base + j] > max) max = scores[base + j];
        let sum = 0;
        for (let j = first; j <= last; j++) {
          const e = Math.exp(scores[base + j] - max);
          scores[base + j] = e;
          sum += e;
        }
        const inv = 1 / sum;
        for (let j = first; j <= last; j++) scores[base + j] *= inv;
        os.fill(0, (t * nHeads + h0 + i) * D, (t * nHeads + h0 + i + 1) * D);
        bias[i] = 0;
      }

      // Weighted values: codes scaled by w · a, the offsets b summed separately.
      for (let j = first; j <= last; j++) {
        unpackCodes(format, vc, j * rowBytes + g * headBytes, D, row);
        rowAffine(format, vp, (j * nKVHeads + g) * pp, affine);
        const a = affine[0];
        const b = affine[1];
        for (let i = 0; i < group; i++) {
          const w = scores[i * S + j];
          const c = w * a;
          bias[i] += w * b;
          const oo = (t * nHeads + h0 + i) * D;
          for (let d = 0; d < D; d++) os[oo + d] += c * row[d];
        }
      }
      for (let i = 0; i < group; i++) {
        const b = bias[i];
        if (b === 0) continue;
        const oo = (t * nHeads + h0 + i) * D;
        for (let d = 0; d < D; d++) os[oo + d] += b;
      }
    }
  }
}
