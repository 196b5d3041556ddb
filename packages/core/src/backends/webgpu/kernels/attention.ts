import type { AttentionParams } from '../../../backend/kernel-signatures.js';
import type { KVCacheLayer } from '../../../kv-cache/kv-cache.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { f32Bits } from '../program.js';
import code, { ATTENTION_MAX_HEAD_DIM } from '../shaders/attention.wgsl.js';
import { gpuOf } from '../webgpu-backend.js';

/** Causal GQA attention of q [T, nHeads * headDim] over a dense cache layer on the GPU. */
export function attentionDense(q: Tensor, cache: KVCacheLayer, p: AttentionParams, out: Tensor): void {
  if (!cache.keys || !cache.values) throw new Error(`dense attention needs a dense cache, got kind '${cache.kind}'`);
  const gpu = gpuOf(out);
  const { nHeads, nKVHeads, headDim, startPos } = p;
  if (headDim > ATTENTION_MAX_HEAD_DIM) throw new Error(`webgpu attention supports head dimensions up to ${ATTENTION_MAX_HEAD_DIM}, got ${headDim}`);
  const width = nHeads * headDim;
  const kvWidth = nKVHeads * headDim;
  const T = q.size / width;
  if (startPos + T > cache.length) throw new Error(`attention: cache holds ${cache.length} tokens, queries reach ${startPos + T}`);
  const keys = gpu.at(cache.keys);
  const values = gpu.at(cache.values);
  for (const [t0, t1] of gpu.rowRuns(T, [[q, width], [out, width]])) {
    const rows = t1 - t0;
    const sq = gpu.at(q, t0 * width, rows * width);
    const so = gpu.at(out, t0 * width, rows * width);
    gpu.dispatch({
      key: 'attention',
      code,
      bindings: [
        { name: 'q', buf: sq.buf, type: 'f32' },
        { name: 'keys', buf: keys.buf, type: 'f32' },
        { name: 'values', buf: values.buf, type: 'f32' },
        { name: 'out', buf: so.buf, type: 'f32', write: true },
      ],
      params: [rows, nHeads, nKVHeads, headDim, startPos + t0, p.window ?? 0, kvWidth, sq.offset, keys.offset, values.offset, so.offset, f32Bits(p.scale)],
      workgroups: [nHeads, rows],
    });
  }
}
