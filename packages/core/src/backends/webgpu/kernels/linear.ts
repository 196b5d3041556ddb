import type { Tensor } from '../../../tensor/tensor.js';
import { grid } from '../program.js';
import { GEMV_MAX_ROWS } from '../shaders/gemv-reduce.wgsl.js';
import { gemmSmallRowsWgsl, gemmWgsl, gemvColumnsWgsl, gemvWgsl, SMALL_ROWS_MAX } from '../shaders/linear.wgsl.js';
import { gpuOf } from '../webgpu-backend.js';
import { perRow, weightBinding } from './common.js';

/**
 * out[T, N] = x[T, K] · Wᵀ + b for f32, f16 and bf16 weights [N, K]. A weight split over several
 * buffers (larger than one binding: a big embedding tied as lm_head) is multiplied piece by piece,
 * each piece writing its own columns of out.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null, out: Tensor): void {
  const gpu = gpuOf(out);
  const [N, K] = weight.shape;
  const T = x.size / K;
  const { type, load } = weightBinding(gpu, weight);
  // On a GPU: one row, a workgroup reduces each column; 2-16 rows (batched decode, verification),
  // tiles of 8 columns over all rows; more, 32 × 32 tiles. On a CPU adapter one invocation walks
  // each column for up to GEMV_MAX_ROWS rows.
  const shape = gpu.cpuAdapter ? (T > GEMV_MAX_ROWS ? 'gemm' : 'columns') : T === 1 ? 'gemv' : T <= SMALL_ROWS_MAX ? 'small' : 'gemm';
  const hasBias = bias !== null;
  const sb = bias ? gpu.at(bias) : null;
  const pieces = gpu.range(weight, 0, N * K);
  for (const [t0, t1] of gpu.rowRuns(T, [[x, K], [out, N]])) {
    const M = t1 - t0;
    const key = `linear:${shape}${shape === 'columns' ? M : ''}:${load}:${hasBias ? 'bias' : ''}`;
    const code = () =>
      shape === 'gemm' ? gemmWgsl(load, hasBias) : shape === 'small' ? gemmSmallRowsWgsl(load, hasBias) : shape === 'columns' ? gemvColumnsWgsl(load, hasBias, M) : gemvWgsl(load, hasBias);
    const sx = gpu.at(x, t0 * K, M * K);
    const so = gpu.at(out, t0 * N, M * N);
    let n0 = 0;
    for (const piece of pieces) {
      const n = piece.size / K;
      gpu.dispatch({
        key,
        code,
        bindings: [
          { name: 'x', buf: sx.buf, type: 'f32' },
          { name: 'w', buf: piece.buf, type },
          ...(sb ? [{ name: 'bias', buf: sb.buf, type: 'f32' as const }] : []),
          { name: 'out', buf: so.buf, type: 'f32', write: true },
        ],
        params: [M, K, n, sx.offset, piece.offset, so.offset + n0, N, sb ? sb.offset + n0 : 0],
        workgroups: shape === 'gemm' ? [Math.ceil(n / 32), Math.ceil(M / 32)] : shape === 'columns' ? grid(n) : shape === 'small' ? perRow(Math.ceil(n / 8)) : perRow(n),
      });
      n0 += n;
    }
  }
}
