import type { Tensor } from '../../../tensor/tensor.js';
import { blockRowBytes, type BlockFormat } from '../../../quant/formats.js';
import { dequantize } from '../../../quant/dequantize.js';
import { f32Of } from '../cpu-backend.js';

/** out[t] = table[ids[t]] for a block-quantized table: only the looked-up rows are decoded. */
export function embeddingQuantized(table: Tensor, ids: Int32Array, out: Tensor): void {
  const [vocab, dim] = table.shape;
  const rowBytes = blockRowBytes(table.dtype, dim, `embedding ${table}`);
  const bytes = table.handle as Uint8Array;
  const dst = f32Of(out);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!(id >= 0 && id < vocab)) throw new RangeError(`token id ${id} is outside the vocabulary (0..${vocab - 1})`);
    dequantize(table.dtype as BlockFormat, bytes.subarray(id * rowBytes, (id + 1) * rowBytes), dst.subarray(t * dim, (t + 1) * dim));
  }
}
