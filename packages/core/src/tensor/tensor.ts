import type { Backend } from '../backend/backend.js';
import type { MemoryUse } from '../backend/memory.js';
import { byteSize, type DType } from './dtype.js';
import { formatShape, numel, type Shape } from './shape.js';

/**
 * A tensor is a shape, a dtype and a handle to storage owned by one backend. On the CPU backend
 * the handle is a typed array (Float32Array for f32, Uint16Array for f16/bf16, Int8Array,
 * Uint8Array, Int32Array; Uint8Array for packed types); other backends keep their own handles.
 */
export class Tensor<H = unknown> {
  readonly size: number;
  readonly byteLength: number;
  private disposed = false;

  constructor(
    readonly backend: Backend,
    readonly shape: Shape,
    readonly dtype: DType,
    readonly handle: H,
    readonly use: MemoryUse,
    /** Views share storage with their parent and are not counted or freed themselves. */
    readonly isView = false,
  ) {
    this.size = numel(shape);
    this.byteLength = byteSize(dtype, this.size);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Frees the storage (a no-op for views); using the tensor afterwards is an error. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (!this.isView) this.backend.dispose(this);
  }

  toString(): string {
    return `Tensor(${this.dtype}${formatShape(this.shape)} on ${this.backend.name})`;
  }
}
