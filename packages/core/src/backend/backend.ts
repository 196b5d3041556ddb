import type { DType } from '../tensor/dtype.js';
import type { Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { KernelRegistry, OpName } from './kernel-registry.js';
import type { MemoryTracker, MemoryUse } from './memory.js';

export type TypedArray = Float32Array | Uint16Array | Int8Array | Uint8Array | Int32Array;

/**
 * What every backend offers. Kernels are not methods: they live in the kernel registry keyed by
 * (backend, op, variant) so technique packages can add or override them.
 */
export interface Backend {
  readonly name: string;
  readonly memory: MemoryTracker;
  readonly kernels: KernelRegistry;
  /**
   * True where reading tensors back is costly (a GPU): greedy decoding then takes the argmax on the
   * device and reads back only the token id.
   */
  readonly preferDeviceSampling?: boolean;
  /** Uninitialized storage for a tensor, counted under `use`. */
  allocate(shape: Shape, dtype: DType, use: MemoryUse): Tensor;
  /** A tensor holding `bytes` (raw storage of `dtype`); the CPU adopts the buffer without copying. */
  upload(bytes: Uint8Array, shape: Shape, dtype: DType, use: MemoryUse): Tensor;
  /** A tensor over part of another's storage, from element `offset`: no copy, not counted again. */
  view(tensor: Tensor, shape: Shape, offset?: number): Tensor;
  /** Copies `data` (raw element storage of `dtype`) into `tensor` starting at byte `byteOffset`. */
  write(tensor: Tensor, data: ArrayBufferView, byteOffset?: number): void;
  /** Copies all of `src` into `dst` starting at element `dstOffset` (same dtype); stays on the device. */
  copy(src: Tensor, dst: Tensor, dstOffset?: number): void;
  /** Copies the tensor's storage out, into `into` when given (so a loop can reuse one buffer). */
  read(tensor: Tensor, into?: TypedArray): Promise<TypedArray>;
  dispose(tensor: Tensor): void;
  /** Whether a kernel is registered for this op (and variant, e.g. a weight dtype). */
  supportsOp(op: OpName, variant?: string): boolean;
  /** Waits until all queued work is done (a no-op on synchronous backends). */
  sync(): Promise<void>;
  /** Releases what the backend holds besides tensors (worker threads, a GPU device); it is unusable afterwards. */
  close?(): void | Promise<void>;
}
