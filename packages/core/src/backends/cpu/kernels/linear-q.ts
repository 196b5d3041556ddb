import type { Tensor } from '../../../tensor/tensor.js';
import { blockRowBytes } from '../../../quant/formats.js';
import { f32Of } from '../cpu-backend.js';

/** Writes the `size` values of the block at byte `p` of `w` into `dst[0..size)`. */
export type BlockDecoder = (w: Uint8Array, p: number, dst: Float32Array) => void;

/**
 * out[T, out] = x[T, in] · Wᵀ + b for a block-quantized W [out, in] (rows of whole blocks, stored
 * back to back). Each block is decoded into a block-sized scratch and dotted with every row of x,
 * so the weights are read once per call and never expanded beyond one block.
 */
export function blockLinear(size: number, bytes: number, decode: BlockDecoder) {
  const scratch = new Float32Array(size);
  return (x: Tensor, weight: Tensor, bias: Tensor | null, out: Tensor): void => {
    const [outF, inF] = weight.shape;
    const rowBytes = blockRowBytes(weight.dtype, inF, `linear ${weight}`);
    const w = weight.handle as Uint8Array;
    const xs = f32Of(x);
    const ys = f32Of(out);
    const bs = bias ? f32Of(bias) : null;
    const rows = x.size / inF;
    const nb = inF / size;
    for (let o = 0; o < outF; o++) {
      const base = o * rowBytes;
      for (let t = 0; t < rows; t++) ys[t * outF + o] = bs ? bs[o] : 0;
      for (let b = 0; b < nb; b++) {
        decode(w, base + b * bytes, scratch);
        for (let t = 0; t < rows; t++) {
          const xo = t * inF + b * size;
          let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          for (let j = 0; j < size; j += 4) {
            s0 += scratch[j] * xs[xo + j];
            s1 += scratch[j + 1] * xs[xo + j + 1];
            s2 += scratch[j + 2] * xs[xo + j + 2];
            s3 += scratch[j + 3] * xs[xo + j + 3];
          }
          ys[t * outF + o] += s0 + s1 + s2 + s3;
        }
      }
    }
  };
}
