/// <reference types="@webgpu/types" />
import type { Backend, TypedArray } from '../../backend/backend.js';
import { globalKernels, type KernelRegistry, type OpName } from '../../backend/kernel-registry.js';
import { MemoryTracker, type MemoryUse } from '../../backend/memory.js';
import { byteSize, dtypeInfo, type DType } from '../../tensor/dtype.js';
import { numel, type Shape } from '../../tensor/shape.js';
import { Tensor } from '../../tensor/tensor.js';
import { BufferPool, Usage, type GpuBuffer } from './buffer-pool.js';
import { acquireDevice, type WebGpuDeviceOptions } from './device.js';
import { registerWebGpuKernels } from './kernels/index.js';
import { ProgramCache, type DispatchSpec } from './program.js';

/** A contiguous run of a tensor's storage inside one GPU buffer; offsets and sizes in units (see `unitsOf`). */
export interface Segment {
  readonly buf: GpuBuffer;
  readonly offset: number;
  readonly size: number;
}

/**
 * The handle of a WebGPU tensor: its storage as one or more segments, in order. A tensor larger than
 * the device's storage binding limit is split by rows over several buffers; views keep the element
 * offset in the segment (shaders receive offsets in their params, so no binding-offset alignment).
 */
export interface WebGpuStorage {
  readonly segments: readonly Segment[];
}

export interface WebGpuBackendOptions extends WebGpuDeviceOptions {
  kernels?: KernelRegistry;
  /** The adapter runs shaders on the CPU (Mesa llvmpipe, SwiftShader): kernels pick shapes that suit it. Default: detected. */
  cpuAdapter?: boolean;
  /** Largest tensor piece bound at once, in bytes; default the device's maxStorageBufferBindingSize. Lower it to exercise splitting. */
  maxBindingBytes?: number;
  /** Bytes of freed buffers kept for reuse (default 256 MiB). */
  maxIdleBytes?: number;
}

/** Counters a benchmark divides by tokens: command-buffer submissions, read-backs, dispatches. */
export interface WebGpuStats {
  submissions: number;
  readbacks: number;
  readbackBytes: number;
  dispatches: number;
}

const TENSOR_USAGE = Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST;
const STAGING_USAGE = Usage.MAP_READ | Usage.COPY_DST;

/** Storage units of a dtype: elements for plain types, bytes for packed ones (as on the CPU). */
export function unitBytes(dtype: DType): number {
  const info = dtypeInfo(dtype);
  return info.blockSize === 1 ? info.blockBytes : 1;
}
const dataWindow = (bytes: number) => Math.max(64, 2 ** Math.ceil(Math.log2(Math.max(bytes, 4))));
const unitsOf = (dtype: DType, n: number) => (dtypeInfo(dtype).blockSize === 1 ? n : byteSize(dtype, n));

function typedArray(dtype: DType, buffer: ArrayBuffer, byteOffset: number, bytes: number): TypedArray {
  switch (dtype) {
    case 'f32':
      return new Float32Array(buffer, byteOffset, bytes / 4);
    case 'f16':
    case 'bf16':
      return new Uint16Array(buffer, byteOffset, bytes / 2);
    case 'i32':
      return new Int32Array(buffer, byteOffset, bytes / 4);
    case 'i8':
      return new Int8Array(buffer, byteOffset, bytes);
    default:
      return new Uint8Array(buffer, byteOffset, bytes);
  }
}

/** Per-submission memory for uniforms and small per-call arrays, written once just before submit. */
interface Arena {
  buf: GpuBuffer;
  mirror: Uint8Array;
  used: number;
}

/** A per-call array already copied into this submission's arena (valid until the next submit). */
export interface StagedData {
  readonly type: 'f32' | 'i32' | 'u32';
  readonly offset: number;
  readonly window: number;
  readonly epoch: number;
}

/**
 * WebGPU backend. Kernels encode compute passes into one command encoder; nothing is submitted
 * until something is read (or `sync`), so a decode step is one submission and one read-back. Weights
 * are uploaded once, the KV cache lives in GPU buffers, pipelines and bind groups are cached, and
 * buffers are pooled.
 */
export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  readonly memory = new MemoryTracker();
  readonly kernels: KernelRegistry;
  readonly preferDeviceSampling = true;
  readonly stats: WebGpuStats = { submissions: 0, readbacks: 0, readbackBytes: 0, dispatches: 0 };
  /** Whether f16 weights are read as `f16` in shaders (`shader-f16`); otherwise unpacked from u32 words. */
  readonly f16: boolean;
  readonly maxBindingBytes: number;
  /** Shaders run on the CPU (llvmpipe, SwiftShader): kernels favour shapes without workgroup barriers. */
  readonly cpuAdapter: boolean;
  readonly programs: ProgramCache;
  readonly pool: BufferPool;
  private readonly align: number;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private arena: Arena;
  private epoch = 0;
  private toDestroy: GPUBuffer[] = [];
  private lost: string | null = null;

  /** Acquires a device (browser or Dawn in Node) and creates the backend on it. */
  static async create(opts: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
    const acquired = await acquireDevice(opts);
    return new WebGpuBackend(acquired.device, { ...opts, f16: acquired.f16 }, acquired.description);
  }

  constructor(
    readonly device: GPUDevice,
    opts: WebGpuBackendOptions = {},
    /** The adapter in words, e.g. "llvmpipe via OpenGL ES, compatibility mode". */
    readonly description = 'WebGPU device',
  ) {
    registerWebGpuKernels();
    this.kernels = opts.kernels ?? globalKernels.child();
    this.f16 = opts.f16 !== false && device.features.has('shader-f16');
    this.cpuAdapter = opts.cpuAdapter ?? /llvmpipe|lavapipe|swiftshader|software/i.test(description);
    const limits = device.limits;
    this.maxBindingBytes = Math.min(opts.maxBindingBytes ?? Infinity, limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    this.align = Math.max(limits.minUniformBufferOffsetAlignment, limits.minStorageBufferOffsetAlignment);
    this.programs = new ProgramCache(device);
    this.pool = new BufferPool(device, opts.maxIdleBytes ?? 256 * 2 ** 20, (b) => this.destroyAfterSubmit(b));
    this.arena = this.newArena(1 << 20);
    void device.lost.then((info) => {
      this.lost = `${info.reason}: ${info.message}`;
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Storage

  allocate(shape: Shape, dtype: DType, use: MemoryUse): Tensor<WebGpuStorage> {
    const t = new Tensor<WebGpuStorage>(this, shape, dtype, { segments: this.layout(shape, dtype).map((p) => ({ buf: this.pool.acquire(p.size * unitBytes(dtype), TENSOR_USAGE), offset: 0, size: p.size })) }, use);
    this.memory.allocated(use, t.byteLength);
    return t;
  }

  upload(bytes: Uint8Array, shape: Shape, dtype: DType, use: MemoryUse): Tensor<WebGpuStorage> {
    const expected = byteSize(dtype, numel(shape));
    if (bytes.byteLength !== expected) throw new Error(`upload: ${bytes.byteLength} bytes given for ${dtype}[${shape.join(', ')}] (${expected} needed)`);
    const ub = unitBytes(dtype);
    const segments = this.layout(shape, dtype).map((p) => ({
      buf: this.pool.create(p.size * ub, TENSOR_USAGE, undefined, bytes.subarray(p.start * ub, (p.start + p.size) * ub)),
      offset: 0,
      size: p.size,
    }));
    this.memory.allocated(use, expected);
    return new Tensor<WebGpuStorage>(this, shape, dtype, { segments }, use);
  }

  view(tensor: Tensor, shape: Shape, offset = 0): Tensor<WebGpuStorage> {
    const begin = unitsOf(tensor.dtype, offset);
    const count = unitsOf(tensor.dtype, numel(shape));
    const segments = this.range(tensor, begin, count);
    return new Tensor<WebGpuStorage>(this, shape, tensor.dtype, { segments }, tensor.use, true);
  }

  write(tensor: Tensor, data: ArrayBufferView, byteOffset = 0): void {
    if (byteOffset + data.byteLength > tensor.byteLength) throw new Error(`write of ${data.byteLength} bytes at ${byteOffset} overflows ${tensor} (${tensor.byteLength} bytes)`);
    if (byteOffset % 4 !== 0 || data.byteLength % 4 !== 0) throw new Error(`webgpu write: byte offset ${byteOffset} and length ${data.byteLength} must be multiples of 4`);
    // Queue writes land before the encoder still open, so work encoded so far goes first.
    this.flush();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const ub = unitBytes(tensor.dtype);
    let done = 0;
    for (const s of this.range(tensor, byteOffset / ub, data.byteLength / ub)) {
      const n = s.size * ub;
      this.device.queue.writeBuffer(s.buf.buffer, s.offset * ub, bytes, done, n);
      done += n;
    }
  }

  copy(src: Tensor, dst: Tensor, dstOffset = 0): void {
    if (src.dtype !== dst.dtype) throw new Error(`copy: ${src} and ${dst} differ in dtype`);
    const ub = unitBytes(dst.dtype);
    const count = unitsOf(src.dtype, src.size);
    const at = unitsOf(dst.dtype, dstOffset);
    if (at + count > unitsOf(dst.dtype, dst.size)) throw new Error(`copy of ${src} at ${dstOffset} overflows ${dst}`);
    const from = this.range(src, 0, count);
    const to = this.range(dst, at, count);
    const encoder = this.commandEncoder();
    let i = 0, j = 0, fi = 0, tj = 0;
    while (i < from.length && j < to.length) {
      const n = Math.min(from[i].size - fi, to[j].size - tj);
      const so = (from[i].offset + fi) * ub, dOff = (to[j].offset + tj) * ub, bytes = n * ub;
      if (so % 4 || dOff % 4 || bytes % 4) throw new Error(`webgpu copy: ${bytes} bytes from ${so} to ${dOff} are not 4-byte aligned`);
      encoder.copyBufferToBuffer(from[i].buf.buffer, so, to[j].buf.buffer, dOff, bytes);
      fi += n;
      tj += n;
      if (fi === from[i].size) {
        i++;
        fi = 0;
      }
      if (tj === to[j].size) {
        j++;
        tj = 0;
      }
    }
  }

  async read(tensor: Tensor, into?: TypedArray): Promise<TypedArray> {
    this.checkLost();
    const ub = unitBytes(tensor.dtype);
    const segments = this.range(tensor, 0, unitsOf(tensor.dtype, tensor.size));
    const pieces = segments.map((s) => {
      const begin = s.offset * ub;
      const alignedBegin = begin - (begin % 4);
      const alignedEnd = Math.ceil((begin + s.size * ub) / 4) * 4;
      return { s, alignedBegin, lead: begin - alignedBegin, bytes: alignedEnd - alignedBegin };
    });
    const total = pieces.reduce((n, p) => n + p.bytes, 0);
    const staging = this.pool.acquire(total, STAGING_USAGE);
    const encoder = this.commandEncoder();
    let at = 0;
    for (const p of pieces) {
      encoder.copyBufferToBuffer(p.s.buf.buffer, p.alignedBegin, staging.buffer, at, p.bytes);
      at += p.bytes;
    }
    this.flush();
    this.stats.readbacks++;
    this.stats.readbackBytes += tensor.byteLength;
    try {
      await staging.buffer.mapAsync(1 /* GPUMapMode.READ */, 0, total);
    } catch (e) {
      this.checkLost();
      throw e;
    }
    const out = into ?? typedArray(tensor.dtype, new ArrayBuffer(tensor.byteLength), 0, tensor.byteLength);
    if (out.byteLength < tensor.byteLength) throw new Error(`read: ${out.byteLength} bytes of room for ${tensor} (${tensor.byteLength} bytes)`);
    const mapped = new Uint8Array(staging.buffer.getMappedRange(0, total));
    const dst = new Uint8Array(out.buffer, out.byteOffset, tensor.byteLength);
    at = 0;
    let written = 0;
    for (const p of pieces) {
      const n = p.s.size * ub;
      dst.set(mapped.subarray(at + p.lead, at + p.lead + n), written);
      written += n;
      at += p.bytes;
    }
    staging.buffer.unmap();
    this.pool.release(staging);
    return out;
  }

  dispose(tensor: Tensor): void {
    this.memory.freed(tensor.use, tensor.byteLength);
    for (const s of (tensor.handle as WebGpuStorage).segments) this.pool.release(s.buf);
  }

  supportsOp(op: OpName, variant?: string): boolean {
    return this.kernels.has(this.name, op, variant);
  }

  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.checkLost();
  }

  /** Frees idle pooled buffers and the device. The backend cannot be used afterwards. */
  close(): void {
    this.destroy();
  }

  destroy(): void {
    this.flush();
    this.pool.trim();
    this.device.destroy();
  }

  // ---------------------------------------------------------------------------------------------
  // What kernels use

  /** The segments holding units [begin, begin + count) of a tensor. */
  range(tensor: Tensor, begin: number, count: number): Segment[] {
    if (tensor.backend !== this) throw new Error(`${tensor} belongs to another backend`);
    const out: Segment[] = [];
    let start = 0;
    for (const s of (tensor.handle as WebGpuStorage).segments) {
      const lo = Math.max(begin, start);
      const hi = Math.min(begin + count, start + s.size);
      if (lo < hi) out.push({ buf: s.buf, offset: s.offset + lo - start, size: hi - lo });
      start += s.size;
    }
    if (out.reduce((n, s) => n + s.size, 0) !== count) throw new Error(`${count} units at ${begin} do not fit in ${tensor}`);
    return out;
  }

  /** The one buffer holding units [begin, begin + count) of a tensor, and the offset there. */
  at(tensor: Tensor, begin = 0, count = unitsOf(tensor.dtype, tensor.size) - begin): Segment {
    const r = this.range(tensor, begin, count);
    if (r.length !== 1) throw new Error(`webgpu: ${tensor} is split over ${r.length} buffers where a kernel needs one (range ${begin}+${count})`);
    return r[0];
  }

  /**
   * Splits rows [0, rows) into runs that lie in one buffer for every tensor given with its row
   * width in units; each run is dispatched on its own. Unsplit tensors give one run.
   */
  rowRuns(rows: number, tensors: readonly (readonly [Tensor, number])[]): [number, number][] {
    const cuts = new Set([0, rows]);
    for (const [t, width] of tensors) {
      let start = 0;
      for (const s of (t.handle as WebGpuStorage).segments) {
        start += s.size;
        if (start % width !== 0) throw new Error(`webgpu: ${t} is split inside a row`);
        if (start / width < rows) cuts.add(start / width);
      }
    }
    const sorted = [...cuts].sort((a, b) => a - b);
    return sorted.slice(1).map((end, i) => [sorted[i], end]);
  }

  /** Copies a per-call array into this submission's arena, for several dispatches to share. */
  stage(type: StagedData['type'], array: Float32Array | Int32Array | Uint32Array): StagedData {
    const window = dataWindow(array.byteLength);
    const offset = this.arenaAlloc(window);
    this.arena.mirror.set(new Uint8Array(array.buffer, array.byteOffset, array.byteLength), offset);
    return { type, offset, window, epoch: this.epoch };
  }

  /** Whether staged data is still valid (nothing was submitted since it was staged). */
  isStaged(d: StagedData | null | undefined): d is StagedData {
    return !!d && d.epoch === this.epoch;
  }

  /**
   * Encodes one compute dispatch (nothing runs until the next read or sync). `staged` reuses data
   * copied earlier in this submission; `spec.data` is copied when it is absent or stale. Returns the
   * data as staged, for later dispatches of this submission to share.
   */
  dispatch(spec: DispatchSpec, staged?: StagedData): StagedData | undefined {
    this.checkLost();
    const paramsWindow = Math.max(16, Math.ceil((spec.params.length * 4) / 16) * 16);
    const dataBytes = spec.data ? dataWindow(spec.data.array.byteLength) : staged ? staged.window : 0;
    this.reserve(paramsWindow + dataBytes + 2 * this.align);
    let data: StagedData | undefined;
    if (this.isStaged(staged)) data = staged;
    else if (spec.data) data = this.stage(spec.data.type, spec.data.array);
    else if (staged) throw new Error('webgpu: staged data from an earlier submission, and no data to stage again');
    const paramsOffset = this.arenaAlloc(paramsWindow);
    new Uint32Array(this.arena.mirror.buffer, paramsOffset, spec.params.length).set(spec.params);
    const { pipeline, bindGroup } = this.programs.prepare(spec, data?.type ?? null, this.arena.buf, paramsWindow, data?.window ?? 0);
    const pass = this.computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup, data ? [paramsOffset, data.offset] : [paramsOffset]);
    const [x, y = 1, z = 1] = spec.workgroups;
    pass.dispatchWorkgroups(x, y, z);
    this.stats.dispatches++;
    return data;
  }

  /** Submits everything encoded so far (one command buffer). */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    const a = this.arena;
    if (a.used > 0) this.device.queue.writeBuffer(a.buf.buffer, 0, a.mirror, 0, a.used);
    this.device.queue.submit([this.encoder.finish()]);
    this.stats.submissions++;
    this.encoder = null;
    a.used = 0;
    this.epoch++;
    for (const b of this.toDestroy.splice(0)) b.destroy();
  }

  // ---------------------------------------------------------------------------------------------

  /** Row pieces of a new tensor: one, or several of whole rows when it exceeds the binding limit. */
  private layout(shape: Shape, dtype: DType): { start: number; size: number }[] {
    const units = unitsOf(dtype, numel(shape));
    const ub = unitBytes(dtype);
    if (units * ub <= this.maxBindingBytes) return [{ start: 0, size: units }];
    const rows = shape.length > 1 ? shape[0] : units;
    const rowUnits = units / rows;
    const perPiece = Math.floor(this.maxBindingBytes / (rowUnits * ub));
    if (perPiece < 1) throw new Error(`webgpu: one row of ${dtype}[${shape.join(', ')}] (${rowUnits * ub} bytes) exceeds the largest binding (${this.maxBindingBytes} bytes)`);
    const pieces: { start: number; size: number }[] = [];
    for (let r = 0; r < rows; r += perPiece) pieces.push({ start: r * rowUnits, size: Math.min(perPiece, rows - r) * rowUnits });
    return pieces;
  }

  private commandEncoder(): GPUCommandEncoder {
    this.endPass();
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  private computePass(): GPUComputePassEncoder {
    if (!this.pass) {
      this.encoder ??= this.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass();
    }
    return this.pass;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  private newArena(bytes: number): Arena {
    const buf = this.pool.create(bytes, Usage.UNIFORM | Usage.STORAGE | Usage.COPY_DST, 'lithe-arena');
    return { buf, mirror: new Uint8Array(buf.bytes), used: 0 };
  }

  /** Makes room for `bytes` more in the arena: when full, submits what is encoded and grows it. */
  private reserve(bytes: number): void {
    const a = this.arena;
    if (Math.ceil(a.used / this.align) * this.align + bytes <= a.buf.bytes) return;
    const hadWork = a.used > 0;
    this.flush();
    if (hadWork || bytes > a.buf.bytes) {
      this.pool.destroy(a.buf);
      this.programs.forgetBindGroups();
      this.arena = this.newArena(Math.max(a.buf.bytes * 2, 2 ** Math.ceil(Math.log2(bytes))));
    }
  }

  private arenaAlloc(window: number): number {
    this.reserve(window + this.align);
    const a = this.arena;
    const offset = Math.ceil(a.used / this.align) * this.align;
    a.used = offset + window;
    return offset;
  }

  private destroyAfterSubmit(b: GPUBuffer): void {
    if (this.encoder) this.toDestroy.push(b);
    else b.destroy();
  }

  private checkLost(): void {
    if (this.lost) throw new Error(`webgpu: the device was lost (${this.lost})`);
  }
}

/** The WebGPU backend of a tensor, for kernels. */
export function gpuOf(t: Tensor): WebGpuBackend {
  if (!(t.backend instanceof WebGpuBackend)) throw new Error(`${t} is not a WebGPU tensor`);
  return t.backend;
}
