import type { Tensor } from '../../../tensor/tensor.js';
import { f32ToF16 } from '../../../tensor/half.js';
import { f32Of } from '../cpu-backend.js';

/** f32 src into an f16 dst from element dstOffset, rounded to nearest even. */
export function convertF16(src: Tensor, dst: Tensor, dstOffset: number): void {
  if (dst.dtype !== 'f16') throw new Error(`convert to f16: the destination ${dst} is not f16`);
  if (dstOffset + src.size > dst.size) throw new Error(`convert of ${src} at ${dstOffset} overflows ${dst}`);
  const s = f32Of(src);
  const d = dst.handle as Uint16Array;
  for (let i = 0; i < s.length; i++) d[dstOffset + i] = f32ToF16(s[i]);
}
