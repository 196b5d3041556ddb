import type { Tensor } from '../../../tensor/tensor.js';
import { BF16_TABLE, F16_TABLE } from '../../../tensor/half.js';
import { f32Of } from '../cpu-backend.js';

/** out[t] = table[ids[t]] for f32, f16 and bf16 tables. */
export function embedding(table: Tensor, ids: Int32Array, out: Tensor): void {
  const [vocab, dim] = table.shape;
  const dst = f32Of(out);
  const decode = table.dtype === 'f16' ? F16_TABLE : BF16_TABLE;
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!(id >= 0 && id < vocab)) throw new RangeError(`token id ${id} is outside the vocabulary (0..${vocab - 1})`);
    const o = t * dim;
    const s = id * dim;
    if (table.dtype === 'f32') {
      dst.set(f32Of(table).subarray(s, s + dim), o);
    } else {
      const src = table.handle as Uint16Array;
      for (let i = 0; i < dim; i++) dst[o + i] = decode[src[s + i]];
    }
  }
}
