/// <reference types="@webgpu/types" />

/** A GPU buffer with a stable id (bind groups are cached by buffer ids). */
export interface GpuBuffer {
  readonly id: number;
  readonly buffer: GPUBuffer;
  /** Allocated size in bytes (the size class, at least what was asked for). */
  readonly bytes: number;
}

let nextId = 1;

/** GPUBufferUsage flags, without relying on the global (absent in Node until Dawn's globals are installed). */
export const Usage = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;

/** Size classes: multiples of 256 bytes up to 64 KiB, then powers of two up to 16 MiB, then 1 MiB steps. */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, bytes);
  if (b <= 65536) return Math.ceil(b / 256) * 256;
  if (b <= 1 << 24) return 2 ** Math.ceil(Math.log2(b));
  return Math.ceil(b / (1 << 20)) * (1 << 20);
}

/**
 * Reuses freed buffers of the same size class and usage, so activations re-created between calls and
 * read-back staging buffers do not reach the driver each time. Only tensors are counted in the
 * backend's memory tracker (by their logical size); buffers idle here are reported separately.
 */
export class BufferPool {
  private readonly idle = new Map<string, GpuBuffer[]>();
  private idleBytes = 0;
  private heldBytes = 0;
  private peakHeld = 0;

  constructor(
    private readonly device: GPUDevice,
    /** Idle bytes kept for reuse; buffers freed beyond this are destroyed. */
    private readonly maxIdleBytes: number,
    /** Destroys a buffer once the work already encoded with it has been submitted. */
    private readonly destroyLater: (b: GPUBuffer) => void,
  ) {}

  acquire(bytes: number, usage: number, label?: string): GpuBuffer {
    const size = sizeClass(bytes);
    const list = this.idle.get(`${usage}:${size}`);
    const reused = list?.pop();
    if (reused) {
      this.idleBytes -= reused.bytes;
      return reused;
    }
    return this.create(size, usage, label);
  }

  /** A buffer of exactly `bytes` (rounded to 4), not from the pool, filled from `data` when given. */
  create(bytes: number, usage: number, label?: string, data?: Uint8Array): GpuBuffer {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const buffer = this.device.createBuffer({ size, usage, label, mappedAtCreation: data !== undefined });
    if (data) {
      new Uint8Array(buffer.getMappedRange()).set(data);
      buffer.unmap();
    }
    this.heldBytes += size;
    if (this.heldBytes > this.peakHeld) this.peakHeld = this.heldBytes;
    return { id: nextId++, buffer, bytes: size };
  }

  release(b: GpuBuffer): void {
    if (b.bytes !== sizeClass(b.bytes) || this.idleBytes + b.bytes > this.maxIdleBytes) {
      this.destroy(b);
      return;
    }
    const key = `${b.buffer.usage}:${b.bytes}`;
    let list = this.idle.get(key);
    if (!list) this.idle.set(key, (list = []));
    list.push(b);
    this.idleBytes += b.bytes;
  }

  destroy(b: GpuBuffer): void {
    this.heldBytes -= b.bytes;
    this.destroyLater(b.buffer);
  }

  /** Destroys every idle buffer. */
  trim(): void {
    for (const list of this.idle.values()) for (const b of list.splice(0)) this.destroy(b);
    this.idleBytes = 0;
  }

  /** Bytes of GPU buffers alive (in use or idle), the peak of that, and the idle part. */
  get stats(): { heldBytes: number; peakHeldBytes: number; idleBytes: number } {
    return { heldBytes: this.heldBytes, peakHeldBytes: this.peakHeld, idleBytes: this.idleBytes };
  }
}
