import type { Tensor } from '../../../tensor/tensor.js';
import code from '../shaders/softmax.wgsl.js';
import { gpuOf } from '../webgpu-backend.js';
import { perRow, rowsOf } from './common.js';

/** Softmax over the last dimension (out may be x). */
export function softmax(x: Tensor, out: Tensor): void {
  const gpu = gpuOf(out);
  const n = x.shape[x.shape.length - 1];
  for (const [r0, r1] of gpu.rowRuns(rowsOf(x, n), [[x, n], [out, n]])) {
    const rows = r1 - r0;
    const sx = gpu.at(x, r0 * n, rows * n);
    const so = gpu.at(out, r0 * n, rows * n);
    gpu.dispatch({
      key: 'softmax',
      code,
      bindings: [
        { name: 'x', buf: sx.buf, type: 'f32' },
        { name: 'out', buf: so.buf, type: 'f32', write: true },
      ],
      params: [rows, n, sx.offset, so.offset],
      workgroups: perRow(rows),
    });
  }
}
