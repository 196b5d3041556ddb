import type { Tensor } from '../../../tensor/tensor.js';
import { F16_TABLE } from '../../../tensor/half.js';
import { f32Of } from '../cpu-backend.js';

/** out[t] = table[ids[t]] for f32, f16 and bf16 tables. */
export function embedding(table: Tensor, ids: Int32Array, out: Tensor): void {
  const [vocab, dim] = table.shape;
  const dst = f32Of(out);
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!(id >= 0 && id < vocab)) throw new RangeError(`token id ${id} is outside the vocabulary (0..${vocab - 1})`);
    const o = t * dim;
    const src = table.handle as Float32Array | Uint16Array;
    const s = id * dim;
    if (table.dtype === 'f32') dst.set((src as Float32Array).subarray(s, s + dim), o);
    else if (table.dtype === 'f16') for (let i = 0; i < dim; i++) dst[o + i] = F16_TABLE[src[s + i]];
    else for (let i = 0; i < dim; i++) bits[o + i] = src[s + i] << 16;
  }
}
