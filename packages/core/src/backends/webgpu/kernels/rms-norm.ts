import type { Tensor } from '../../../tensor/tensor.js';
import { f32Bits } from '../program.js';
import code from '../shaders/rms-norm.wgsl.js';
import { gpuOf } from '../webgpu-backend.js';
import { perRow, rowsOf } from './common.js';

/** Row-wise RMSNorm (out may be x). */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number, out: Tensor): void {
  const gpu = gpuOf(out);
  const dim = weight.size;
  const w = gpu.at(weight);
  for (const [r0, r1] of gpu.rowRuns(rowsOf(x, dim), [[x, dim], [out, dim]])) {
    const rows = r1 - r0;
    const sx = gpu.at(x, r0 * dim, rows * dim);
    const so = gpu.at(out, r0 * dim, rows * dim);
    gpu.dispatch({
      key: 'rmsNorm',
      code,
      bindings: [
        { name: 'x', buf: sx.buf, type: 'f32' },
        { name: 'w', buf: w.buf, type: 'f32' },
        { name: 'out', buf: so.buf, type: 'f32', write: true },
      ],
      params: [rows, dim, sx.offset, w.offset, so.offset, f32Bits(eps)],
      workgroups: perRow(rows),
    });
  }
}
