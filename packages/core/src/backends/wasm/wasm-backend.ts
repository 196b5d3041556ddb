import type { Backend, TypedArray } from '../../backend/backend.js';
import { globalKernels, type KernelRegistry, type OpName } from '../../backend/kernel-registry.js';
import type { AttentionParams } from '../../backend/kernel-signatures.js';
import { MemoryTracker, type MemoryUse } from '../../backend/memory.js';
import type { KVCacheLayer } from '../../kv-cache/kv-cache.js';
import { byteSize, type DType } from '../../tensor/dtype.js';
import { numel, type Shape } from '../../tensor/shape.js';
import { Tensor } from '../../tensor/tensor.js';
import { align, WasmAllocator } from './allocator.js';
import { kernelModule, simd128Module, type WasmSimd, type WasmSimdChoice } from './kernel-modules.js';
import { CONTROL_BYTES, defaultThreads, ThreadPool } from './thread-pool.js';
import { registerWasmKernels } from './kernels.js';
import { wasmApi, type WasmMemory, type WasmModule } from './wasm-api.js';
import { compileExtension, type LoadedExtension, type WasmKernels } from './wasm-extension.js';
import { copyTyped, readTyped, viewTyped, writeTyped } from '../typed-array-storage.js';
import { REPACKED_BLOCK_BYTES, rowGeometry } from './repacked-rows.js';
import type { GroupedIntWeights } from '../../model/grouped-int-linear.js';
import { linearGroupedIntCpu } from '../cpu/kernels/linear-grouped-int.js';

export type WasmTensor = Tensor<TypedArray>;

/** The exports of wasm/kernels.ts (addresses and counts are i32). */
interface KernelExports {
  heap_base(): number;
  xq_row_bytes(inF: number): number;
  xq_bytes(T: number, inF: number): number;
  quantize_x(x: number, xq: number, T: number, inF: number, q4: number): void;
  quantize_x_i8(x: number, xq: number, T: number, inF: number, q4: number): void;
  quantize_x_q4_1(x: number, xq: number, T: number, inF: number): void;
  quantize_x_q4_k(x: number, xq: number, T: number, inF: number): void;
  quantize_x_q6_k(x: number, xq: number, T: number, inF: number): void;
  repack_rows(src: number, dst: number, rows: number, nb: number, blockBytes: number): number;
  unpack_rows(src: number, dst: number, rows: number, nb: number, blockBytes: number): void;
  scale_f32(src: number, dst: number, n: number, factor: number): void;
  rms_norm(x: number, w: number, out: number, rows: number, dim: number, eps: number): void;
  add(a: number, b: number, out: number, n: number): void;
  swiglu(g: number, u: number, out: number, n: number): void;
  convert_f16(src: number, dst: number, n: number): void;
  rope(x: number, T: number, nHeads: number, half: number, positions: number, invFreq: number, cs: number): void;
  softmax(x: number, out: number, rows: number, n: number): void;
  argmax(x: number, out: number, rows: number, n: number): void;
  embed_rows(kind: number, table: number, ids: number, n: number, dim: number, out: number): void;
  cb4_scratch_bytes(inF: number): number;
  grouped_x_row_bytes(inF: number, G: number): number;
  prepare_x_grouped(x: number, perm: number, xp: number, T: number, inF: number, G: number): void;
  [pooled: string]: (...args: number[]) => number | void;
}

/** Kernels run through the thread pool, by op index. */
const POOLED = ['linear_f32', 'linear_f16', 'linear_bf16', 'linear_q8_0', 'linear_q4_0', 'linear_q4_1', 'linear_q4_k', 'linear_q6_k', 'linear_q8_0_i8', 'linear_q4_0_i8', 'linear_cb4', 'attention', 'attention_f16', 'linear_grouped_q4'] as const;
type Pooled = (typeof POOLED)[number];
const POOLED_INDEX = new Map<Pooled, number>(POOLED.map((op, i) => [op, i]));
export type WasmLinearDType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_1' | 'q4_k' | 'q6_k';

/**
 * Block-quantized linears take the activations quantized to 8 bits per 32 values, each format in
 * its own layout (xq_row_bytes bytes per row for all): the quantizer, and the block size the
 * input size must be a multiple of.
 */
const QUANTIZED_X: Partial<Record<WasmLinearDType | 'q8_0_i8' | 'q4_0_i8', { block: number; quantize: (ex: KernelExports, x: number, xq: number, T: number, inF: number) => void }>> = {
  q8_0: { block: 32, quantize: (ex, x, xq, T, inF) => ex.quantize_x(x, xq, T, inF, 0) },
  q4_0: { block: 32, quantize: (ex, x, xq, T, inF) => ex.quantize_x(x, xq, T, inF, 1) },
  // The relaxed-SIMD kernels' layout (linear_q8_0_i8 / linear_q4_0_i8).
  q8_0_i8: { block: 32, quantize: (ex, x, xq, T, inF) => ex.quantize_x_i8(x, xq, T, inF, 0) },
  q4_0_i8: { block: 32, quantize: (ex, x, xq, T, inF) => ex.quantize_x_i8(x, xq, T, inF, 1) },
  q4_1: { block: 32, quantize: (ex, x, xq, T, inF) => ex.quantize_x_q4_1(x, xq, T, inF) },
  q4_k: { block: 256, quantize: (ex, x, xq, T, inF) => ex.quantize_x_q4_k(x, xq, T, inF) },
  q6_k: { block: 256, quantize: (ex, x, xq, T, inF) => ex.quantize_x_q6_k(x, xq, T, inF) },
};

/** embed_rows's table kinds (wasm/rows.ts); q8_0 and q4_0 tables are repacked. */
const EMBED_KIND: Record<string, number> = { q8_0: 0, q4_0: 1, q4_1: 2, q4_k: 3, q6_k: 4 };
const ROW_BLOCK: Record<string, number> = { q8_0: 32, q4_0: 32, q4_1: 32, q4_k: 256, q6_k: 256 };

/** wasm32 addresses 4 GiB: weights, KV cache, activations and scratch all live below it. */
export const WASM32_MAX_BYTES = 2 ** 32;
const PAGE = 65536;
// f16 linears take x scaled by 2^56 (the kernel reads weights as w·2^-112 and rescales the sum).
const TWO_56 = 2 ** 56;
// Prefill widens this many 16-bit weight rows at a time (WIDE_ROWS in wasm/kernels.ts).
const WIDE_ROWS = 16;
// q8_0 / q4_0 rows are repacked through a staging block of about this size.
const STAGING_BYTES = 1 << 20;

/**
 * A 4-bit codebook weight (NF4, FP4 and the like) for WasmBackend.linearCodebook4: element e of
 * the flattened [outFeatures, inFeatures] matrix is codebook[code(e)] · scale(block of e).
 */
export interface Codebook4Weights {
  readonly outFeatures: number;
  readonly inFeatures: number;
  /** Elements per scale; rows must be whole blocks of an even size. */
  readonly blockSize: number;
  /** u8 [out · in / 2] on this backend: element 2j in the high nibble of byte j. */
  readonly codes: Tensor;
  /** The 16 f32 codebook values. */
  readonly codebook: Float32Array;
  /** f32 [blocks] on this backend, or null for 8-bit coded scales (the four fields below). */
  readonly scales: Tensor | null;
  /** u8 [blocks]: scale(b) = f32(f32(scaleMap[scaleCodes[b]] · scaleScales[b / scaleBlock]) + scaleOffset). */
  readonly scaleCodes?: Tensor | null;
  readonly scaleScales?: Tensor | null;
  readonly scaleMap?: Float32Array;
  readonly scaleBlock?: number;
  readonly scaleOffset?: number;
}

export interface WasmBackendOptions {
  /** Threads computing each kernel, the calling one included; default: the physical cores (1 in a browser page that is not cross-origin isolated). */
  threads?: number;
  /** Upper bound of the wasm memory in bytes (rounded to 64 KiB pages); default and most: 4 GiB. */
  maxMemoryBytes?: number;
  /** Below this many multiply-adds a kernel runs on the calling thread alone; default 32768. */
  minParallelWork?: number;
  kernels?: KernelRegistry;
  /**
   * Which build of the kernels to run: 'auto' (default) takes 'relaxed-simd' where the runtime
   * validates it and its self-test computes exact sums (Node ≥ 22, Chrome ≥ 114), else 'simd128'.
   * Asking for 'relaxed-simd' where it is not available throws.
   */
  simd?: WasmSimdChoice;
  /**
   * With relaxed SIMD, also run q8_0 through the relaxed 8-bit dot product (x's sign moved onto the
   * weights). Off by default: where V8 lowers the instruction to pmaddubsw + pmaddwd (x64 without
   * AVX-VNNI, as on this project's machines) the sign's xor and sub make it slower than the i16
   * kernel; where it is one instruction (ARM's sdot, AVX-VNNI) it is the faster one. q4_0's nibbles
   * need no sign trick and always take the relaxed kernel.
   */
  relaxedQ8?: boolean;
}

/** The SIMD128 kernels module, compiled once per process (or page) and shared by every backend and worker. */
export function kernelsModule(): Promise<WasmModule> {
  return simd128Module();
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
  /** The build of the kernels this backend runs (see WasmBackendOptions.simd). */
  readonly simd: WasmSimd;
  private readonly ex: KernelExports;
  private readonly alloc: WasmAllocator;
  private pool: ThreadPool;
  private readonly module: WasmModule;
  private control: number;
  private readonly extensions = new Map<string, Promise<WasmKernels>>();
  private readonly loaded: LoadedExtension[] = [];
  private readonly minParallelWork: number;
  private readonly relaxedQ8: boolean;
  private shared = { ptr: 0, bytes: 0 };
  private perThread = { ptr: 0, stride: 0 };
  private closed = false;
  // Byte ranges of q8_0 tensors holding a −128 quant: the relaxed kernel's sign trick cannot negate
  // it, so these run on the i16 kernel (llama.cpp's quantizer never writes −128; other tools may).
  private readonly q8Exact: { begin: number; end: number }[] = [];

  private constructor(init: { memory: WasmMemory; module: WasmModule; control: number; ex: KernelExports; alloc: WasmAllocator; pool: ThreadPool; simd: WasmSimd; opts: WasmBackendOptions }) {
    registerWasmKernels();
    this.kernels = init.opts.kernels ?? globalKernels.child();
    this.wasmMemory = init.memory;
    this.ex = init.ex;
    this.alloc = init.alloc;
    this.pool = init.pool;
    this.module = init.module;
    this.control = init.control;
    this.simd = init.simd;
    this.threads = init.pool.threads;
    this.minParallelWork = init.opts.minParallelWork ?? 32768;
    this.relaxedQ8 = init.opts.relaxedQ8 ?? false;
  }

  static async create(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
    const threads = opts.threads ?? (await defaultThreads());
    if (!(Number.isSafeInteger(threads) && threads >= 1)) throw new RangeError(`threads must be a positive integer, got ${threads}`);
    if (threads > 1 && typeof SharedArrayBuffer === 'undefined') {
      throw new Error('the wasm backend needs SharedArrayBuffer for threads > 1 (in browsers: a cross-origin isolated page); pass threads: 1');
    }
    const maxBytes = Math.min(WASM32_MAX_BYTES, align(opts.maxMemoryBytes ?? WASM32_MAX_BYTES, PAGE));
    const { simd, module } = await kernelModule(opts.simd ?? 'auto');
    const memory = new (wasmApi().Memory)({ initial: 1, maximum: maxBytes / PAGE, shared: true });
    const ex = new (wasmApi().Instance)(module, { env: { memory } }).exports as unknown as KernelExports;
    const alloc = new WasmAllocator(memory, ex.heap_base(), maxBytes);
    const control = alloc.alloc(CONTROL_BYTES);
    const pool = await ThreadPool.create({ module, memory, control, ops: POOLED, threads });
    return new WasmBackend({ memory, module, control, ex, alloc, pool, simd, opts });
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
      const minus128 = this.ex.repack_rows(stage, ptrOf(tensor) + byteOffset + done, chunk.length / rowBytes, nb, blockBytes);
      if (minus128 > 0 && !this.needsExactQ8(tensor)) this.q8Exact.push({ begin: ptrOf(tensor), end: ptrOf(tensor) + tensor.byteLength });
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
    const at = this.q8Exact.findIndex((r) => r.begin === ptrOf(tensor));
    if (at >= 0) this.q8Exact.splice(at, 1);
    this.alloc.release(ptrOf(tensor));
    this.memory.freed(tensor.use, tensor.byteLength);
  }

  /** Ends the worker threads. Tensors stay readable; kernels can no longer run. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }

  /**
   * Adds a package's own WebAssembly kernels to this backend (see WasmKernels for the module's
   * contract): the module is checked, instantiated over this backend's memory here and in every
   * worker (the pool restarts once, so call it at setup, not between kernels), and its `ops` become
   * runnable with `parallelFor`. Loading the same name again returns the first load.
   */
  loadKernels(name: string, bytes: Uint8Array, ops: readonly string[]): Promise<WasmKernels> {
    if (this.closed) return Promise.reject(new Error('the wasm backend was closed'));
    let k = this.extensions.get(name);
    if (!k) {
      k = this.addExtension(name, bytes, ops);
      this.extensions.set(name, k);
      k.catch(() => this.extensions.delete(name));
    }
    return k;
  }

  private async addExtension(name: string, bytes: Uint8Array, ops: readonly string[]): Promise<WasmKernels> {
    const module = await compileExtension(name, bytes, ops);
    const instance = new (wasmApi().Instance)(module, { env: { memory: this.wasmMemory } });
    const ext: LoadedExtension = { name, module, ops, exports: instance.exports as LoadedExtension['exports'] };
    const extensions = [...this.loaded, ext];
    // Workers instantiate every module when they start: a fresh pool on its own control block. The
    // old one keeps serving kernels until the new one is up (other tasks may run while this awaits).
    const control = this.alloc.alloc(CONTROL_BYTES);
    const modules = extensions.map((x) => ({ module: x.module, ops: x.ops }));
    let pool: ThreadPool;
    try {
      pool = await ThreadPool.create({ module: this.module, memory: this.wasmMemory, control, ops: POOLED, threads: this.threads, extensions: modules });
    } catch (e) {
      this.alloc.release(control);
      throw e;
    }
    const [old, oldControl] = [this.pool, this.control];
    [this.pool, this.control] = [pool, control];
    await old.close();
    this.alloc.release(oldControl);
    if (this.closed) await pool.close();
    const base = POOLED.length + this.loaded.reduce((n, x) => n + x.ops.length, 0);
    this.loaded.push(ext);
    const index = new Map(ops.map((op, i) => [op, base + i]));
    return {
      name,
      exports: ext.exports,
      address: (t) => {
        this.check(t);
        return ptrOf(t);
      },
      parallelFor: (op, args, items, grain, scratchBytes, work = Infinity) => {
        const i = index.get(op);
        if (i === undefined) throw new Error(`wasm kernels '${name}' have no op '${op}' (loaded: ${ops.join(', ')})`);
        if (this.closed) throw new Error('the wasm backend was closed');
        const s = this.threadScratch(scratchBytes);
        const fn = ext.exports[op];
        if (work < this.minParallelWork) fn(...args, 0, items, s.ptr);
        else this.pool.run(i, fn, args, items, grain, s.ptr, s.stride);
      },
    };
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

  private needsExactQ8(t: Tensor): boolean {
    const p = ptrOf(t);
    return this.q8Exact.some((r) => p >= r.begin && p < r.end);
  }

  /** The q8_0 / q4_0 kernel: relaxed SIMD's where this backend runs it (and the weight allows). */
  private quantKernel(kind: WasmLinearDType, weight: Tensor): WasmLinearDType | 'q8_0_i8' | 'q4_0_i8' {
    if (this.simd !== 'relaxed-simd') return kind;
    if (kind === 'q4_0') return 'q4_0_i8';
    if (kind === 'q8_0' && this.relaxedQ8 && !(this.q8Exact.length > 0 && this.needsExactQ8(weight))) return 'q8_0_i8';
    return kind;
  }

  /** @internal out[T, outF] = x[T, inF] · Wᵀ + b with W in `kind`. */
  linear(kind: WasmLinearDType, x: Tensor, weight: Tensor, bias: Tensor | null, out: Tensor): void {
    this.check(x, weight, bias, out);
    const [outF, inF] = weight.shape;
    const T = x.size / inF;
    if (!Number.isInteger(T) || out.size !== T * outF) throw new Error(`linear: x ${x} and out ${out} do not fit weight ${weight}`);
    let xp = ptrOf(x);
    const op = this.quantKernel(kind, weight);
    const quantized = QUANTIZED_X[op];
    if (quantized) {
      if (inF % quantized.block !== 0) throw new Error(`linear ${kind}: the input size ${inF} is not a multiple of ${quantized.block}`);
      // The rows, then the tile tables of the multi-row kernels (xq_bytes, the same for every format).
      const s = this.sharedScratch(this.ex.xq_bytes(T, inF));
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
    this.pooled(`linear_${op}`, [xp, ptrOf(weight), bias ? ptrOf(bias) : 0, ptrOf(out), T, inF, outF], outF, 4, T * outF * inF, scratch);
  }

  /**
   * out[T, outF] = x[T, inF] · Wᵀ + b for a 4-bit codebook weight (wasm/codebook4.ts), threaded
   * over output rows: techniques with such weights (@lithe/nf4) register it as their wasm kernel.
   * Activations stay f32; the products are f32 (no rounding of the decoded weights to f16 / bf16).
   */
  linearCodebook4(x: Tensor, w: Codebook4Weights, bias: Tensor | null, out: Tensor): void {
    const { inFeatures: inF, outFeatures: outF, blockSize: B } = w;
    this.check(x, w.codes, w.scales, w.scaleCodes ?? null, w.scaleScales ?? null, bias, out);
    const T = x.size / inF;
    if (!Number.isInteger(T) || out.size !== T * outF) throw new Error(`linearCodebook4: x ${x} and out ${out} do not fit a [${outF}, ${inF}] weight`);
    if (!(B >= 2 && B % 2 === 0 && inF % B === 0)) throw new Error(`linearCodebook4: rows of ${inF} are not whole blocks of ${B} (an even block size dividing the row)`);
    if (w.codebook.length !== 16) throw new Error(`linearCodebook4: the codebook has ${w.codebook.length} values, not 16`);
    if (w.codes.byteLength < (outF * inF) / 2) throw new Error(`linearCodebook4: ${w.codes} holds fewer than ${(outF * inF) / 2} bytes of codes`);
    const nested = !w.scales;
    if (nested && !(w.scaleCodes && w.scaleScales && w.scaleMap?.length === 256 && (w.scaleBlock ?? 0) > 0)) throw new Error('linearCodebook4: without f32 scales, scaleCodes, scaleScales, a 256-entry scaleMap and scaleBlock are needed');
    // The codebook and the scale map travel in the shared scratch (after any quantized activations: none here).
    this.sharedScratch(64 + 1024);
    const tables = this.stage(w.codebook, 0);
    if (nested) this.stage(w.scaleMap!, 64);
    const args = [ptrOf(x), ptrOf(w.codes), nested ? 0 : ptrOf(w.scales!), nested ? ptrOf(w.scaleCodes!) : 0, nested ? ptrOf(w.scaleScales!) : 0, tables, bias ? ptrOf(bias) : 0, ptrOf(out), T, inF, outF, B, w.scaleBlock ?? 1, w.scaleOffset ?? 0];
    this.pooled('linear_cb4', args, outF, 4, T * outF * inF, this.ex.cb4_scratch_bytes(inF));
  }

  /**
   * @internal Grouped int weights (quant/grouped-int.ts): 4 bits with groups and rows of a multiple
   * of 32 run in WebAssembly (wasm/grouped-int.ts), x prepared once per call; other widths and
   * shapes run the TypeScript kernel on this memory.
   */
  linearGroupedInt(x: Tensor, w: GroupedIntWeights, bias: Tensor | null, out: Tensor): void {
    this.check(x, w.codes, w.scales, w.zeros, w.perm, bias, out);
    const { inFeatures: inF, outFeatures: outF, groupSize: G } = w;
    if (w.bits !== 4 || G % 32 !== 0 || inF % G !== 0) return linearGroupedIntCpu(x, w, bias, out);
    const T = x.size / inF;
    if (!Number.isInteger(T) || out.size !== T * outF) throw new Error(`linearGroupedInt ${w.name}: x ${x} and out ${out} do not fit a [${outF}, ${inF}] weight`);
    const xp = this.sharedScratch(T * this.ex.grouped_x_row_bytes(inF, G));
    this.ex.prepare_x_grouped(ptrOf(x), w.perm ? ptrOf(w.perm) : 0, xp, T, inF, G);
    this.pooled('linear_grouped_q4', [xp, ptrOf(w.codes), ptrOf(w.scales), ptrOf(w.zeros), bias ? ptrOf(bias) : 0, ptrOf(out), T, inF, outF, G], outF, 4, (T * outF * inF) / 2, 32);
  }

  /** @internal Causal GQA attention over a dense f32 or f16 cache, heads split across threads. */
  attention(q: Tensor, cache: KVCacheLayer, p: AttentionParams, out: Tensor): void {
    if (!cache.keys || !cache.values) throw new Error(`dense attention needs a dense cache, got kind '${cache.kind}'`);
    this.check(q, cache.keys, cache.values, out);
    const half = cache.keys.dtype === 'f16';
    if (!half && cache.keys.dtype !== 'f32') throw new Error(`wasm attention reads f32 or f16 keys and values, got ${cache.keys.dtype}`);
    const rows = q.size / (p.nHeads * p.headDim);
    const diag = p.noDiagonal ? 1 : 0;
    if (p.startPos + rows - diag > cache.length) throw new Error(`attention: cache holds ${cache.length} tokens, queries reach ${p.startPos + rows - diag}`);
    const span = p.startPos + rows;
    const args = [ptrOf(q), ptrOf(cache.keys), ptrOf(cache.values), ptrOf(out), rows, p.nHeads, p.nKVHeads, p.headDim, p.scale, p.startPos, p.window ?? 0, diag];
    this.pooled(half ? 'attention_f16' : 'attention', args, p.nHeads, 1, rows * p.nHeads * span * p.headDim * 2, span * 4);
  }

  /** @internal f32 src into f16 dst from element dstOffset, rounded to nearest even. */
  convertF16(src: Tensor, dst: Tensor, dstOffset: number): void {
    this.check(src, dst);
    if (src.dtype !== 'f32' || dst.dtype !== 'f16') throw new Error(`convert to f16: needs f32 ${src} into f16 ${dst}`);
    if (dstOffset + src.size > dst.size) throw new Error(`convert of ${src} at ${dstOffset} overflows ${dst}`);
    this.ex.convert_f16(ptrOf(src), ptrOf(dst) + dstOffset * 2, src.size);
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

  /** Copies a small JS array into the shared scratch at byte `at` (kernels read their arguments there). */
  private stage(values: Int32Array | Float32Array, at: number): number {
    new Uint8Array(this.wasmMemory.buffer, this.shared.ptr + at, values.byteLength).set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    return this.shared.ptr + at;
  }

  /** @internal Rotary embedding in place on x [T, nHeads · headDim]. */
  rope(x: Tensor, nHeads: number, positions: Int32Array, invFreq: Float32Array): void {
    this.check(x);
    const half = invFreq.length;
    if (x.size !== positions.length * nHeads * half * 2) throw new Error(`rope: ${x} is not ${positions.length} rows of ${nHeads} heads of ${half * 2}`);
    this.sharedScratch(align(positions.byteLength, 16) + align(invFreq.byteLength, 16) + 2 * invFreq.byteLength);
    const pos = this.stage(positions, 0);
    const freq = this.stage(invFreq, align(positions.byteLength, 16));
    this.ex.rope(ptrOf(x), positions.length, nHeads, half, pos, freq, freq + align(invFreq.byteLength, 16));
  }

  /** @internal */
  softmax(x: Tensor, out: Tensor): void {
    this.check(x, out);
    const n = x.shape[x.shape.length - 1];
    this.ex.softmax(ptrOf(x), ptrOf(out), x.size / n, n);
  }

  /** @internal */
  argmax(x: Tensor, out: Tensor): void {
    this.check(x, out);
    const n = x.shape[x.shape.length - 1];
    if (out.dtype !== 'i32' || out.size !== x.size / n) throw new Error(`argmax: out ${out} must be i32 with one value per row of ${x}`);
    this.ex.argmax(ptrOf(x), ptrOf(out), x.size / n, n);
  }

  /** @internal out[t] = table[ids[t]] for a block-quantized table: only the looked-up rows are decoded. */
  embedding(table: Tensor, ids: Int32Array, out: Tensor): void {
    this.check(table, out);
    const [vocab, dim] = table.shape;
    const kind = EMBED_KIND[table.dtype];
    if (kind === undefined || dim % ROW_BLOCK[table.dtype] !== 0) throw new Error(`embedding: no wasm kernel for a ${table.dtype} table of rows of ${dim}`);
    if (out.size !== ids.length * dim) throw new Error(`embedding: out ${out} does not hold ${ids.length} rows of ${dim}`);
    for (const id of ids) if (!(id >= 0 && id < vocab)) throw new RangeError(`token id ${id} is outside the vocabulary (0..${vocab - 1})`);
    this.sharedScratch(ids.byteLength);
    this.ex.embed_rows(kind, ptrOf(table), this.stage(ids, 0), ids.length, dim, ptrOf(out));
  }

  /** @internal */
  swiglu(gate: Tensor, up: Tensor, out: Tensor): void {
    this.check(gate, up, out);
    this.ex.swiglu(ptrOf(gate), ptrOf(up), ptrOf(out), out.size);
  }
}
