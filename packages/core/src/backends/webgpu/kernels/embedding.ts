import type { Tensor } from '../../../tensor/tensor.js';
import { grid } from '../program.js';
import { embeddingWgsl } from '../shaders/embedding.wgsl.js';
import { gpuOf } from '../webgpu-backend.js';
import { weightBinding } from './common.js';

/**
 * out[t] = table[ids[t]]. The ids travel with the submission's uniforms; a table split over several
 * buffers (larger than one binding) is gathered piece by piece, each dispatch writing the rows whose
 * id falls in its piece.
 */
export function embedding(table: Tensor, ids: Int32Array, out: Tensor): void {
  const gpu = gpuOf(out);
  const [vocab, dim] = table.shape;
  for (const id of ids) if (!(id >= 0 && id < vocab)) throw new RangeError(`token id ${id} is outside the vocabulary (0..${vocab - 1})`);
  const { type, load } = weightBinding(gpu, table);
  const pieces = gpu.range(table, 0, vocab * dim);
  for (const [t0, t1] of gpu.rowRuns(ids.length, [[out, dim]])) {
    const so = gpu.at(out, t0 * dim, (t1 - t0) * dim);
    const n = (t1 - t0) * dim;
    const part = ids.subarray(t0, t1);
    let rowStart = 0;
    for (const piece of pieces) {
      const rows = piece.size / dim;
      const rowEnd = rowStart + rows;
      if (pieces.length === 1 || part.some((id) => id >= rowStart && id < rowEnd)) {
        gpu.dispatch({
          key: `embedding:${load}`,
          code: () => embeddingWgsl(load),
          bindings: [
            { name: 'w', buf: piece.buf, type },
            { name: 'out', buf: so.buf, type: 'f32', write: true },
          ],
          params: [n, dim, rowStart, rowEnd, piece.offset, so.offset],
          data: { type: 'i32', array: part },
          workgroups: grid(n),
        });
      }
      rowStart = rowEnd;
    }
  }
}
