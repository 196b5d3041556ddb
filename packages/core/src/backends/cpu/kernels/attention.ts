import type { AttentionParams } from '../../../backend/kernel-signatures.js';
import type { KVCacheLayer } from '../../../kv-cache/kv-cache.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { F16_TABLE } from '../../../tensor/half.js';
import { f32Of } from '../cpu-backend.js';
import { dot } from './linear.js';

let scores = new Float32Array(0);

/**
 * Causal grouped-query attention over a dense f32 or f16 cache. The causal mask is implicit: query row t
 * only reads cache positions up to startPos + t (and after the sliding window start), so no S × S
 * mask ever exists. Scores for one row at a time: memory O(S). With `noDiagonal` the row's own
 * position is left out too (an empty row gives zeros).
 */
export function attentionDense(q: Tensor, cache: KVCacheLayer, p: AttentionParams, out: Tensor): void {
  if (!cache.keys || !cache.values) throw new Error(`dense attention needs a dense cache, got kind '${cache.kind}'`);
  const { nHeads, nKVHeads, headDim, scale, startPos } = p;
  const qs = f32Of(q);
  // f16 keys and values are decoded exactly (a table lookup) as they are read.
  const half = cache.keys.dtype === 'f16';
  const ks = half ? (cache.keys.handle as Uint16Array) : f32Of(cache.keys);
  const vs = half ? (cache.values.handle as Uint16Array) : f32Of(cache.values);
  const k16 = ks as Uint16Array;
  const v16 = vs as Uint16Array;
  const os = f32Of(out);
  const rows = q.size / (nHeads * headDim);
  const kvWidth = nKVHeads * headDim;
  const group = nHeads / nKVHeads;
  const diag = p.noDiagonal ? 1 : 0;
  if (startPos + rows - diag > cache.length) throw new Error(`attention: cache holds ${cache.length} tokens, queries reach ${startPos + rows - diag}`);
  if (scores.length < startPos + rows) scores = new Float32Array(Math.max(startPos + rows, scores.length * 2));

  for (let t = 0; t < rows; t++) {
    const last = startPos + t - diag;
    const first = p.window ? Math.max(0, startPos + t - p.window + 1) : 0;
    for (let h = 0; h < nHeads; h++) {
      const qo = (t * nHeads + h) * headDim;
      const kvo = Math.floor(h / group) * headDim;
      let max = -Infinity;
      for (let j = first; j <= last; j++) {
        const ko = j * kvWidth + kvo;
        let s = 0;
        if (half) for (let d = 0; d < headDim; d++) s += qs[qo + d] * F16_TABLE[k16[ko + d]];
        else s = dot(qs, qo, ks as Float32Array, ko, headDim);
        s *= scale;
        scores[j] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let j = first; j <= last; j++) {
        const e = Math.exp(scores[j] - max);
        scores[j] = e;
        sum += e;
      }
      const inv = 1 / sum;
      os.fill(0, qo, qo + headDim);
      for (let j = first; j <= last; j++) {
        const w = scores[j] * inv;
        const vo = j * kvWidth + kvo;
        if (half) for (let d = 0; d < headDim; d++) os[qo + d] += w * F16_TABLE[v16[vo + d]];
        else for (let d = 0; d < headDim; d++) os[qo + d] += w * vs[vo + d];
      }
    }
  }
}
