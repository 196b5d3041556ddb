import type { TypedArray } from '../backend/backend.js';
import { byteSize, dtypeInfo } from '../tensor/dtype.js';
import { numel, type Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

// Backend operations shared by the backends whose tensor handles are typed arrays (cpu, wasm).

/** The part of a tensor's storage that a view of `shape` from element `offset` covers. */
export function viewTyped(tensor: Tensor, shape: Shape, offset = 0): TypedArray {
  const src = tensor.handle as TypedArray;
  // Packed types are stored as bytes, so their counts and offsets are in bytes.
  const units = (n: number) => (dtypeInfo(tensor.dtype).blockSize === 1 ? n : byteSize(tensor.dtype, n));
  const begin = units(offset);
  const end = begin + units(numel(shape));
  if (end > src.length) throw new Error(`a view of ${numel(shape)} elements at ${offset} does not fit in ${tensor}`);
  return src.subarray(begin, end);
}

export function writeTyped(tensor: Tensor, data: ArrayBufferView, byteOffset = 0): void {
  const dst = tensor.handle as TypedArray;
  if (byteOffset + data.byteLength > dst.byteLength) {
    throw new Error(`write of ${data.byteLength} bytes at ${byteOffset} overflows ${tensor} (${dst.byteLength} bytes)`);
  }
  new Uint8Array(dst.buffer, dst.byteOffset + byteOffset, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

export function copyTyped(src: Tensor, dst: Tensor, dstOffset = 0): void {
  if (src.dtype !== dst.dtype) throw new Error(`copy: ${src} and ${dst} differ in dtype`);
  // Packed types are stored as bytes, so their offsets are in bytes.
  const units = dtypeInfo(dst.dtype).blockSize === 1 ? dstOffset : byteSize(dst.dtype, dstOffset);
  const from = src.handle as TypedArray;
  const to = dst.handle as TypedArray;
  if (units + from.length > to.length) throw new Error(`copy of ${src} at ${dstOffset} overflows ${dst}`);
  to.set(from as never, units);
}

export function readTyped(tensor: Tensor, into?: TypedArray): TypedArray {
  const src = tensor.handle as TypedArray;
  if (!into) return src.slice();
  if (into.byteLength < src.byteLength) throw new Error(`read: ${into.byteLength} bytes of room for ${tensor} (${src.byteLength} bytes)`);
  new Uint8Array(into.buffer, into.byteOffset, src.byteLength).set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
  return into;
}
