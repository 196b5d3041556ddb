import type { Tensor } from '../../../tensor/tensor.js';
import { grid } from '../program.js';
import code from '../shaders/convert.wgsl.js';
import { gpuOf } from '../webgpu-backend.js';

/** f32 src into an f16 dst from element dstOffset (even), rounded to nearest even, on the GPU. */
export function convertF16(src: Tensor, dst: Tensor, dstOffset: number): void {
  const gpu = gpuOf(dst);
  if (src.dtype !== 'f32' || dst.dtype !== 'f16') throw new Error(`convert to f16: needs f32 ${src} into f16 ${dst}`);
  if (dstOffset % 2 !== 0 || src.size % 2 !== 0) throw new Error(`webgpu convert to f16 writes whole u32 words: offset ${dstOffset} and ${src.size} values must be even`);
  if (dstOffset + src.size > dst.size) throw new Error(`convert of ${src} at ${dstOffset} overflows ${dst}`);
  const s = gpu.at(src);
  const d = gpu.at(dst, dstOffset, src.size);
  const words = src.size / 2;
  gpu.dispatch({
    key: 'convert:f16',
    code,
    bindings: [
      { name: 'src', buf: s.buf, type: 'f32' },
      { name: 'dst', buf: d.buf, type: 'u32', write: true },
    ],
    params: [words, s.offset, d.offset / 2],
    workgroups: grid(words),
  });
}
