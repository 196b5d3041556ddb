import type { Backend, TypedArray } from '../../backend/backend.js';
import { globalKernels, type KernelRegistry, type OpName } from '../../backend/kernel-registry.js';
import { MemoryTracker, type MemoryUse } from '../../backend/memory.js';
import { byteSize, dtypeInfo, type DType } from '../../tensor/dtype.js';
import { numel, type Shape } from '../../tensor/shape.js';
import { Tensor } from '../../tensor/tensor.js';
import { registerCpuKernels } from './kernels/index.js';
import { copyTyped, readTyped, viewTyped, writeTyped } from '../typed-array-storage.js';

export type CpuTensor = Tensor<TypedArray>;

/** The typed array a CPU tensor of this dtype is stored in (packed types are raw bytes). */
function makeStorage(dtype: DType, n: number, bytes: number): TypedArray {
  switch (dtype) {
    case 'f32':
      return new Float32Array(n);
    case 'f16':
    case 'bf16':
      return new Uint16Array(n);
    case 'i8':
      return new Int8Array(n);
    case 'i32':
      return new Int32Array(n);
    default:
      return new Uint8Array(bytes);
  }
}

/** Wraps caller-owned storage as a CPU tensor without copying. */
function viewStorage(dtype: DType, buffer: ArrayBuffer, byteOffset: number, bytes: number): TypedArray {
  const per = dtypeInfo(dtype).blockSize === 1 ? dtypeInfo(dtype).blockBytes : 1;
  switch (dtype) {
    case 'f32':
      return new Float32Array(buffer, byteOffset, bytes / per);
    case 'f16':
    case 'bf16':
      return new Uint16Array(buffer, byteOffset, bytes / per);
    case 'i8':
      return new Int8Array(buffer, byteOffset, bytes);
    case 'i32':
      return new Int32Array(buffer, byteOffset, bytes / per);
    default:
      return new Uint8Array(buffer, byteOffset, bytes);
  }
}

/** The reference backend: plain TypeScript kernels over typed arrays. */
export class CpuBackend implements Backend {
  readonly name = 'cpu';
  readonly memory = new MemoryTracker();
  readonly kernels: KernelRegistry;

  constructor(kernels: KernelRegistry = globalKernels.child()) {
    registerCpuKernels();
    this.kernels = kernels;
  }

  allocate(shape: Shape, dtype: DType, use: MemoryUse): CpuTensor {
    const n = numel(shape);
    const bytes = byteSize(dtype, n);
    const storage = makeStorage(dtype, n, bytes);
    this.memory.allocated(use, bytes);
    return new Tensor(this, shape, dtype, storage, use);
  }

  /**
   * Adopts bytes the caller hands over (e.g. a weight just read from a file) without a second copy.
   * An unaligned range is copied once to an aligned buffer.
   */
  upload(bytes: Uint8Array, shape: Shape, dtype: DType, use: MemoryUse): CpuTensor {
    const expected = byteSize(dtype, numel(shape));
    if (bytes.byteLength !== expected) throw new Error(`upload: ${bytes.byteLength} bytes given for ${dtype}[${shape.join(', ')}] (${expected} needed)`);
    const align = dtypeInfo(dtype).blockSize === 1 ? dtypeInfo(dtype).blockBytes : 1;
    const owned = bytes.byteOffset % align === 0 ? bytes : bytes.slice();
    const storage = viewStorage(dtype, owned.buffer as ArrayBuffer, owned.byteOffset, owned.byteLength);
    this.memory.allocated(use, expected);
    return new Tensor(this, shape, dtype, storage, use);
  }

  view(tensor: Tensor, shape: Shape, offset = 0): CpuTensor {
    return new Tensor(this, shape, tensor.dtype, viewTyped(tensor, shape, offset), tensor.use, true);
  }

  write(tensor: Tensor, data: ArrayBufferView, byteOffset = 0): void {
    writeTyped(tensor, data, byteOffset);
  }

  copy(src: Tensor, dst: Tensor, dstOffset = 0): void {
    copyTyped(src, dst, dstOffset);
  }

  async read(tensor: Tensor, into?: TypedArray): Promise<TypedArray> {
    return readTyped(tensor, into);
  }

  dispose(tensor: Tensor): void {
    this.memory.freed(tensor.use, tensor.byteLength);
  }

  supportsOp(op: OpName, variant?: string): boolean {
    return this.kernels.has(this.name, op, variant);
  }

  async sync(): Promise<void> {}
}

/** The storage of a CPU tensor, typed for the kernels. */
export const f32Of = (t: Tensor): Float32Array => t.handle as Float32Array;
export const u16Of = (t: Tensor): Uint16Array => t.handle as Uint16Array;
export const i32Of = (t: Tensor): Int32Array => t.handle as Int32Array;
