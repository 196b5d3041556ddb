import type { Backend, TypedArray } from '../../backend/backend.js';
import { globalKernels, type KernelRegistry, type OpName } from '../../backend/kernel-registry.js';
import type { AttentionParams } from '../../backend/kernel-signatures.js';
import { MemoryTracker, type MemoryUse } from '../../backend/memory.js';
import type { KVCacheLayer } from '../../kv-cache/kv-cache.js';
import { byteSize, type DType } from '../../tensor/dtype.js';
import { numel, type Shape } from '../../tensor/shape.js';
import { Tensor } from '../../tensor/tensor.js';
import { align, WasmAllocator } from './allocator.js';
import { KERNELS_WASM_BASE64 } from './kernels-wasm.js';
import { CONTROL_BYTES, physicalCores, ThreadPool } from './thread-pool.js';
import { registerWasmKernels } from './kernels.js';
import { wasmApi, type WasmMemory, type WasmModule } from './wasm-api.js';
import { copyTyped, readTyped, viewTyped, writeTyped } from '../typed-array-storage.js';
import { REPACKED_BLOCK_BYTES, rowGeometry } from './repacked-rows.js';

export type WasmTensor = Tensor<TypedArray>;

/** The exports of wasm/kernels.ts (addresses and counts are i32). */
interface KernelExports {
  heap_base(): number;
  xq_row_bytes(inF: number): number;
  quantize_x(x: number, xq: number, T: number, inF: number, q4: number): void;
  quantize_x_q4_1(x: number, xq: number, T: number, inF: number): void;
  quantize_x_q4_k(x: number, xq: number, T: number, inF: number): void;
  quantize_x_q6_k(x: number, xq: number, T: number, inF: number): void;
  repack_rows(src: number, dst: number, rows: number, nb: number, blockBytes: number): void;
  unpack_rows(src: number, dst: number, rows: number, nb: number, blockBytes: number): void;
  scale_f32(src: number, dst: number, n: number, factor: number): void;
  rms_norm(x: number, w: number, out: number, rows: number, dim: number, eps: number): void;
  add(a: number, b: number, out: number, n: number): void;
  swiglu(g: number, u: number, out: number, n: number): void;
  [pooled: string]: (...args: number[]) => number | void;
}

/** Kernels run through the thread pool, by op index. */
const POOLED = ['linear_f32', 'linear_f16', 'linear_bf16', 'linear_q8_0', 'linear_q4_0', 'linear_q4_1', 'linear_q4_k', 'linear_q6_k', 'attention'] as const;
type Pooled = (typeof POOLED)[number];
const POOLED_INDEX = new Map<Pooled, number>(POOLED.map((op, i) => [op, i]));
export type WasmLinearDType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_1' | 'q4_k' | 'q6_k';

/**
 * Block-quantized linears take the activations quantized to 8 bits per 32 values, each format in
 * its own layout (xq_row_bytes bytes per row for all): the quantizer, and the block size the
 * input size must be a multiple of.
 */
const QUANTIZED_X: Partial<Record<WasmLinearDType, { block: number; quantize: (ex: KernelExports, x: number, xq: number, T: number, inF: number) => void }>> = {
  q8_0: { block: 32, quantize: (ex, x, xq, T, inF) => ex.quantize_x(x, xq, T, inF, 0) },
  q4_0: { block: 32, quantize: (ex, x, xq, T, inF) => ex.quantize_x(x, xq, T, inF, 1) },
  q4_1: { block: 32, quantize: (ex, x, xq, T, inF) => ex.quantize_x_q4_1(x, xq, T, inF) },
  q4_k: { block: 256, quantize: (ex, x, xq, T, inF) => ex.quantize_x_q4_k(x, xq, T, inF) },
  q6_k: { block: 256, quantize: (ex, x, xq, T, inF) => ex.quantize_x_q6_k(x, xq, T, inF) },
};

/** wasm32 addresses 4 GiB: weights, KV cache, activations and scratch all live below it. */
export const WASM32_MAX_BYTES = 2 ** 32;
const PAGE = 65536;
// f16 linears take x scaled by 2^56 (the kernel reads weights as w·2^-112 and rescales the sum).
const TWO_56 = 2 ** 56;
// Prefill widens this many 16-bit weight rows at a time (WIDE_ROWS in wasm/kernels.ts).
const WIDE_ROWS = 16;
// q8_0 / q4_0 rows are repacked through a staging block of about this size.
const STAGING_BYTES = 1 << 20;

export interface WasmBackendOptions {
  /** Threads computing each kernel, the calling one included; default: the physical cores. */
  threads?: number;
  /** Upper bound of the wasm memory in bytes (rounded to 64 KiB pages); default and most: 4 GiB. */
  maxMemoryBytes?: number;
  /** Below this many multiply-adds a kernel runs on the calling thread alone; default 32768. */
  minParallelWork?: number;
  kernels?: KernelRegistry;
}

let compiled: Promise<WasmModule> | null = null;

/** The kernels module, compiled once per process (or page) and shared by every backend and worker. */
export function kernelsModule(): Promise<WasmModule> {
  if (!compiled) {
    const bytes = Uint8Array.from(atob(KERNELS_WASM_BASE64), (c) => c.charCodeAt(0));
    compiled = wasmApi().compile(bytes);
  }
  return compiled;
}

function storage(dtype: DType, buffer: ArrayBufferLike, ptr: number, n: number, bytes: number): TypedArray {
  switch (dtype) {
    case 'f32':
      return new Float32Array(buffer, ptr, n);
    case 'f16':
    case 'bf16':
      return new Uint16Array(buffer, ptr, n);
    case 'i8':
      return new Int8Array(buffer, ptr, n);
    case 'i32':
      return new Int32Array(buffer, ptr, n);
    default:
      return new Uint8Array(buffer, ptr, bytes);
  }
}

const ptrOf = (t: Tensor): number => (t.handle as TypedArray).byteOffset;

/**
 * CPU inference through WebAssembly SIMD kernels (wasm/kernels.ts), multithreaded. Every tensor
 * lives in one shared WasmMemory; its handle is a typed-array view into that memory, as on
 * the CPU backend, so the reference TypeScript kernels run on it unchanged for the ops not ported.
 * Create with `await WasmBackend.create({ threads })`; `close()` (or `dispose()` with no tensor)
 * ends its worker threads.
 */
export class WasmBackend implements Backend {
  readonly name = 'wasm';
  readonly memory = new MemoryTracker();
  readonly kernels: KernelRegistry;
  /** Threads computing each kernel, the caller's included. */
  readonly threads: number;
  readonly wasmMemory: WasmMemory;
  private readonly ex: KernelExports;
  private readonly alloc: WasmAllocator;
  private readonly pool: ThreadPool;
  private readonly minParallelWork: number;
  private shared = { ptr: 0, bytes: 0 };
  private perThread = { ptr: 0, stride: 0 };
  private closed = false;

  private constructor(init: { memory: WasmMemory; ex: KernelExports; alloc: WasmAllocator; pool: ThreadPool; opts: WasmBackendOptions }) {
    registerWasmKernels();
    this.kernels = init.opts.kernels ?? globalKernels.child();
    this.wasmMemory = init.memory;
    this.ex = init.ex;
    this.alloc = init.alloc;
    this.pool = init.pool;
    this.threads = init.pool.threads;
    this.minParallelWork = init.opts.minParallelWork ?? 32768;
  }

  static async create(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
    const threads = opts.threads ?? (await physicalCores());
    if (!(Number.isSafeInteger(threads) && threads >= 1)) throw new RangeError(`threads must be a positive integer, got ${threads}`);
    if (threads > 1 && typeof SharedArrayBuffer === 'undefined') {
      throw new Error('the wasm backend needs SharedArrayBuffer for threads > 1 (in browsers: a cross-origin isolated page); pass threads: 1');
    }
    const maxBytes = Math.min(WASM32_MAX_BYTES, align(opts.maxMemoryBytes ?? WASM32_MAX_BYTES, PAGE));
    const module = await kernelsModule();
    const memory = new (wasmApi().Memory)({ initial: 1, maximum: maxBytes / PAGE, shared: true });
    const ex = new (wasmApi().Instance)(module, { env: { memory } }).exports as unknown as KernelExports;
    const alloc = new WasmAllocator(memory, ex.heap_base(), maxBytes);
    const control = alloc.alloc(CONTROL_BYTES);
    const pool = await ThreadPool.create({ module, memory, control, ops: POOLED, threads });
    return new WasmBackend({ memory, ex, alloc, pool, opts });
  }

  /** Bytes of wasm memory in use (tensors, scratch, freed blocks awaiting reuse). */
  get reservedBytes(): number {
    return this.alloc.highWater;
  }

  allocate(shape: Shape, dtype: DType, use: MemoryUse): WasmTensor {
    const n = numel(shape);
    const bytes = byteSize(dtype, n);
    const ptr = this.alloc.alloc(bytes);
    this.memory.allocated(use, bytes);
    return new Tensor(this, shape, dtype, storage(dtype, this.wasmMemory.buffer, ptr, n, bytes), use);
  }

  /**
   * Copies the bytes into wasm memory once; the caller's buffer can be dropped afterwards. q8_0 and
   * q4_0 rows are repacked for the kernels on the way in (repacked-rows.ts).
   */
  upload(bytes: Uint8Array, shape: Shape, dtype: DType, use: MemoryUse): WasmTensor {
    const expected = byteSize(dtype, numel(shape));
    if (bytes.byteLength !== expected) throw new Error(`upload: ${bytes.byteLength} bytes given for ${dtype}[${shape.join(', ')}] (${expected} needed)`);
    const t = this.allocate(shape, dtype, use);
    this.write(t, bytes);
    return t;
  }

  view(tensor: Tensor, shape: Shape, offset = 0): WasmTensor {
    const part = viewTyped(tensor, shape, offset);
    const blockBytes = REPACKED_BLOCK_BYTES[tensor.dtype];
    if (blockBytes !== undefined) {
      const { rowBytes } = rowGeometry(tensor, blockBytes);
      const begin = part.byteOffset - (tensor.handle as TypedArray).byteOffset;
      if (begin % rowBytes !== 0 || part.byteLength % rowBytes !== 0) throw new Error(`a view of ${tensor} must cover whole rows (the wasm backend repacks ${tensor.dtype} by row)`);
    }
    return new Tensor(this, shape, tensor.dtype, part, tensor.use, true);
  }

  write(tensor: Tensor, data: ArrayBufferView, byteOffset = 0): void {
    const blockBytes = REPACKED_BLOCK_BYTES[tensor.dtype];
    if (blockBytes === undefined) {
      writeTyped(tensor, data, byteOffset);
      return;
    }
    const { nb, rowBytes } = rowGeometry(tensor, blockBytes);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (byteOffset % rowBytes !== 0 || bytes.length % rowBytes !== 0) {
      throw new Error(`write to ${tensor}: ${bytes.length} bytes at ${byteOffset} are not whole rows of ${rowBytes} bytes (the wasm backend repacks ${tensor.dtype} by row)`);
    }
    if (byteOffset + bytes.length > tensor.byteLength) throw new Error(`write of ${bytes.length} bytes at ${byteOffset} overflows ${tensor} (${tensor.byteLength} bytes)`);
    const rowsPerChunk = Math.max(1, Math.floor(STAGING_BYTES / rowBytes));
    const stage = this.sharedScratch(rowsPerChunk * rowBytes);
    for (let done = 0; done < bytes.length; done += rowsPerChunk * rowBytes) {
      const chunk = bytes.subarray(done, done + rowsPerChunk * rowBytes);
      new Uint8Array(this.wasmMemory.buffer, stage, chunk.length).set(chunk);
      this.ex.repack_rows(stage, ptrOf(tensor) + byteOffset + done, chunk.length / rowBytes, nb, blockBytes);
    }
  }

  copy(src: Tensor, dst: Tensor, dstOffset = 0): void {
    copyTyped(src, dst, dstOffset);
  }

  async read(tensor: Tensor, into?: TypedArray): Promise<TypedArray> {
    const blockBytes = REPACKED_BLOCK_BYTES[tensor.dtype];
    if (blockBytes === undefined) return readTyped(tensor, into);
    // Unpacked into a temporary block of wasm memory, then copied out.
    const { nb, rowBytes } = rowGeometry(tensor, blockBytes);
    const stage = this.alloc.alloc(tensor.byteLength);
    try {
      this.ex.unpack_rows(ptrOf(tensor), stage, tensor.byteLength / rowBytes, nb, blockBytes);
      const unpacked = new Tensor(this, tensor.shape, tensor.dtype, new Uint8Array(this.wasmMemory.buffer, stage, tensor.byteLength), tensor.use, true);
      return readTyped(unpacked, into);
    } finally {
      this.alloc.release(stage);
    }
  }

  /** Frees a tensor's block; with no tensor, closes the backend (ends its threads). */
  dispose(tensor?: Tensor): void {
    if (!tensor) {
      void this.close();
      return;
    }
    if (tensor.isView) return;
    this.alloc.release(ptrOf(tensor));
    this.memory.freed(tensor.use, tensor.byteLength);
  }

  /** Ends the worker threads. Tensors stay readable; kernels can no longer run. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }

  supportsOp(op: OpName, variant?: string): boolean {
    return this.kernels.has(this.name, op, variant);
  }

  async sync(): Promise<void> {}

  // --- kernels (called by the functions registered in kernels.ts) -----------------------------

  private check(...ts: (Tensor | null)[]): void {
    for (const t of ts) if (t && t.backend !== this) throw new Error(`wasm kernel: ${t} does not live on this wasm backend`);
    if (this.closed) throw new Error('the wasm backend was closed');
  }

  /** A shared scratch block of at least `bytes` (grown by reallocation, counted as 'other'). */
  private sharedScratch(bytes: number): number {
    if (bytes > this.shared.bytes) {
      if (this.shared.ptr) {
        this.alloc.release(this.shared.ptr);
        this.memory.freed('other', this.shared.bytes);
      }
      const size = align(Math.max(bytes, this.shared.bytes * 1.5));
      this.shared = { ptr: this.alloc.alloc(size), bytes: size };
      this.memory.allocated('other', size);
    }
    return this.shared.ptr;
  }

  /** One scratch block of at least `bytes` per thread: thread i's is at ptr + i * stride. */
  private threadScratch(bytes: number): { ptr: number; stride: number } {
    if (bytes > this.perThread.stride) {
      if (this.perThread.ptr) {
        this.alloc.release(this.perThread.ptr);
        this.memory.freed('other', this.perThread.stride * this.threads);
      }
      const stride = align(Math.max(bytes, this.perThread.stride * 1.5));
      this.perThread = { ptr: this.alloc.alloc(stride * this.threads), stride };
      this.memory.allocated('other', stride * this.threads);
    }
    return this.perThread;
  }

  private pooled(op: Pooled, args: number[], rows: number, grain: number, work: number, scratchBytes: number): void {
    const s = this.threadScratch(scratchBytes);
    const fn = this.ex[op];
    if (work < this.minParallelWork) fn(...args, 0, rows, s.ptr);
    else this.pool.run(POOLED_INDEX.get(op)!, fn, args, rows, grain, s.ptr, s.stride);
  }

  /** @internal out[T, outF] = x[T, inF] · Wᵀ + b with W in `kind`. */
  linear(kind: WasmLinearDType, x: Tensor, weight: Tensor, bias: Tensor | null, out: Tensor): void {
    this.check(x, weight, bias, out);
    const [outF, inF] = weight.shape;
    const T = x.size / inF;
    if (!Number.isInteger(T) || out.size !== T * outF) throw new Error(`linear: x ${x} and out ${out} do not fit weight ${weight}`);
    let xp = ptrOf(x);
    const quantized = QUANTIZED_X[kind];
    if (quantized) {
      if (inF % quantized.block !== 0) throw new Error(`linear ${kind}: the input size ${inF} is not a multiple of ${quantized.block}`);
      const s = this.sharedScratch(T * this.ex.xq_row_bytes(inF));
      quantized.quantize(this.ex, xp, s, T, inF);
      xp = s;
    } else if (kind === 'f16') {
      const s = this.sharedScratch(T * inF * 4);
      this.ex.scale_f32(xp, s, T * inF, TWO_56);
      xp = s;
    }
    const wide = (kind === 'f16' || kind === 'bf16') && T > 1;
    // Wide: WIDE_ROWS widened rows and 16 bytes; else 32 bytes the kernels store into (see touch).
    const scratch = wide ? WIDE_ROWS * inF * 4 + 16 : 32;
    this.pooled(`linear_${kind}`, [xp, ptrOf(weight), bias ? ptrOf(bias) : 0, ptrOf(out), T, inF, outF], outF, 4, T * outF * inF, scratch);
  }

  /** @internal Causal GQA attention over a dense f32 cache, heads split across threads. */
  attention(q: Tensor, cache: KVCacheLayer, p: AttentionParams, out: Tensor): void {
    if (!cache.keys || !cache.values) throw new Error(`dense attention needs a dense cache, got kind '${cache.kind}'`);
    this.check(q, cache.keys, cache.values, out);
    const rows = q.size / (p.nHeads * p.headDim);
    if (p.startPos + rows > cache.length) throw new Error(`attention: cache holds ${cache.length} tokens, queries reach ${p.startPos + rows}`);
    const span = p.startPos + rows;
    const args = [ptrOf(q), ptrOf(cache.keys), ptrOf(cache.values), ptrOf(out), rows, p.nHeads, p.nKVHeads, p.headDim, p.scale, p.startPos, p.window ?? 0];
    this.pooled('attention', args, p.nHeads, 1, rows * p.nHeads * span * p.headDim * 2, span * 4);
  }

  /** @internal */
  rmsNorm(x: Tensor, weight: Tensor, eps: number, out: Tensor): void {
    this.check(x, weight, out);
    const dim = weight.size;
    this.ex.rms_norm(ptrOf(x), ptrOf(weight), ptrOf(out), x.size / dim, dim, eps);
  }

  /** @internal */
  add(a: Tensor, b: Tensor, out: Tensor): void {
    this.check(a, b, out);
    this.ex.add(ptrOf(a), ptrOf(b), ptrOf(out), out.size);
  }

  /** @internal */
  swiglu(gate: Tensor, up: Tensor, out: Tensor): void {
    this.check(gate, up, out);
    this.ex.swiglu(ptrOf(gate), ptrOf(up), ptrOf(out), out.size);
  }
}
