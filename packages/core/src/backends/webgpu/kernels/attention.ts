import type { AttentionParams } from '../../../backend/kernel-signatures.js';
import type { KVCacheLayer } from '../../../kv-cache/kv-cache.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { f32Bits } from '../program.js';
import { ATTENTION_MAX_HEAD_DIM, attentionWgsl } from '../shaders/attention.wgsl.js';
import { gpuOf } from '../webgpu-backend.js';

/** Causal GQA attention of q [T, nHeads * headDim] over a dense f32 or f16 cache layer on the GPU. */
export function attentionDense(q: Tensor, cache: KVCacheLayer, p: AttentionParams, out: Tensor): void {
  if (!cache.keys || !cache.values) throw new Error(`dense attention needs a dense cache, got kind '${cache.kind}'`);
  const gpu = gpuOf(out);
  const { nHeads, nKVHeads, headDim, startPos } = p;
  if (headDim > ATTENTION_MAX_HEAD_DIM) throw new Error(`webgpu attention supports head dimensions up to ${ATTENTION_MAX_HEAD_DIM}, got ${headDim}`);
  const width = nHeads * headDim;
  const kvWidth = nKVHeads * headDim;
  const T = q.size / width;
  const diag = p.noDiagonal ? 1 : 0;
  if (startPos + T - diag > cache.length) throw new Error(`attention: cache holds ${cache.length} tokens, queries reach ${startPos + T - diag}`);
  const dtype = cache.keys.dtype;
  if (dtype !== 'f32' && dtype !== 'f16') throw new Error(`webgpu attention reads f32 or f16 keys and values, got ${dtype}`);
  const kv = dtype as 'f32' | 'f16';
  const kvType = kv === 'f16' ? 'u32' : 'f32';
  const keys = gpu.at(cache.keys);
  const values = gpu.at(cache.values);
  for (const [t0, t1] of gpu.rowRuns(T, [[q, width], [out, width]])) {
    const rows = t1 - t0;
    const sq = gpu.at(q, t0 * width, rows * width);
    const so = gpu.at(out, t0 * width, rows * width);
    gpu.dispatch({
      key: `attention:${kv}`,
      code: () => attentionWgsl(kv),
      bindings: [
        { name: 'q', buf: sq.buf, type: 'f32' },
        { name: 'keys', buf: keys.buf, type: kvType },
        { name: 'values', buf: values.buf, type: kvType },
        { name: 'out', buf: so.buf, type: 'f32', write: true },
      ],
      params: [rows, nHeads, nKVHeads, headDim, startPos + t0, p.window ?? 0, kvWidth, sq.offset, keys.offset, values.offset, so.offset, f32Bits(p.scale), diag],
      workgroups: [nHeads, rows],
    });
  }
}
