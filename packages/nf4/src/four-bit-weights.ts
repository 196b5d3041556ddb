import type { Backend, LinearModule, Tensor } from '@lithe/core';
import type { FourBitType } from './codebooks.js';
import { linear4bitCpu } from './kernels/cpu-linear-4bit.js';
import { linear4bitWasm } from './kernels/wasm-linear-4bit.js';
import { linear4bitWebGpu } from './kernels/webgpu-linear-4bit.js';
import type { QuantizedTensor } from './quantize.js';

export type ComputeDType = 'f32' | 'f16' | 'bf16';

/** A 4-bit weight on a backend, as the kernels read it. */
export interface FourBitWeights {
  readonly name: string;
  readonly type: FourBitType;
  readonly outFeatures: number;
  readonly inFeatures: number;
  readonly blockSize: number;
  /** u8 [ceil(out·in / 2)]: element 2j in the high nibble of byte j. */
  readonly codes: Tensor;
  /** The 16 codebook values. */
  readonly codebook: Float32Array;
  /** f32 [blocks], or null when double-quantized. */
  readonly absmax: Tensor | null;
  /** u8 [blocks]: 8-bit codes of absmax − offset (double quantization). */
  readonly absmaxCodes: Tensor | null;
  /** f32 [ceil(blocks / nestedBlockSize)]: the absmax of each block of absmax − offset. */
  readonly absmaxScale: Tensor | null;
  readonly nestedBlockSize: number;
  /** The 256-entry map the absmax codes index. */
  readonly nestedMap: Float32Array;
  /** Mean of the absmax values, added back after decoding them. */
  readonly offset: number;
  /** Dtype the dequantized weights are rounded to before the product (activations stay f32). */
  readonly computeDType: ComputeDType;
}

/** The contract a backend's 4-bit kernel meets (registered as op 'linear4bit'). */
export type Linear4bitKernel = (x: Tensor, w: FourBitWeights, bias: Tensor | null, out: Tensor) => void;

export const LINEAR_4BIT_OP = 'linear4bit';

function kernelFor(backend: Backend): Linear4bitKernel {
  if (backend.kernels.has(backend.name, LINEAR_4BIT_OP)) return backend.kernels.get(backend.name, LINEAR_4BIT_OP) as Linear4bitKernel;
  if (backend.name === 'cpu') return linear4bitCpu;
  if (backend.name === 'wasm') return linear4bitWasm;
  if (backend.name === 'webgpu') return linear4bitWebGpu;
  throw new Error(`nf4: backend '${backend.name}' has no '${LINEAR_4BIT_OP}' kernel; 4-bit weights run on: cpu, wasm, webgpu`);
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * A linear layer with NF4/FP4 weights: packed codes and the (possibly double-quantized) absmax,
 * held on the backend and counted as weights. Never holds a dequantized copy of the matrix.
 */
export class FourBitLinear implements LinearModule {
  readonly inFeatures: number;
  readonly outFeatures: number;
  private readonly kernel: Linear4bitKernel;

  constructor(
    readonly weights: FourBitWeights,
    backend: Backend,
    /** The layer's bias (Qwen2's q/k/v), owned by the module. */
    readonly bias: Tensor | null = null,
  ) {
    this.inFeatures = weights.inFeatures;
    this.outFeatures = weights.outFeatures;
    this.kernel = kernelFor(backend);
  }

  get name(): string {
    return this.weights.name;
  }

  /** 'nf4' or 'fp4', for reports. */
  get dtype(): string {
    return this.weights.type;
  }

  /** Uploads a quantized tensor ([out, in]) to the backend as a module. */
  static fromQuantized(name: string, backend: Backend, q: QuantizedTensor, computeDType: ComputeDType = 'f32', bias: Tensor | null = null): FourBitLinear {
    if (q.shape.length !== 2) throw new Error(`nf4: '${name}' has shape [${q.shape.join(', ')}]; a linear weight is [out, in]`);
    const [outFeatures, inFeatures] = q.shape;
    const up = (a: Uint8Array | Float32Array, dtype: 'u8' | 'f32') => backend.upload(bytesOf(a), [a.length], dtype, 'weights');
    const weights: FourBitWeights = {
      name,
      type: q.type,
      outFeatures,
      inFeatures,
      blockSize: q.blockSize,
      codes: up(q.codes, 'u8'),
      codebook: q.codebook,
      absmax: q.absmax ? up(q.absmax, 'f32') : null,
      absmaxCodes: q.nested ? up(q.nested.codes, 'u8') : null,
      absmaxScale: q.nested ? up(q.nested.scale, 'f32') : null,
      nestedBlockSize: q.nested?.blockSize ?? 0,
      nestedMap: q.nested?.map ?? new Float32Array(256),
      offset: q.nested?.offset ?? 0,
      computeDType,
    };
    return new FourBitLinear(weights, backend, bias);
  }

  /** Parameters of the weight matrix (not the bias). */
  get parameters(): number {
    return this.inFeatures * this.outFeatures;
  }

  /** Bytes held on the backend: codes, absmax (or its codes and scales), bias. */
  get bytes(): number {
    const w = this.weights;
    return w.codes.byteLength + (w.absmax?.byteLength ?? 0) + (w.absmaxCodes?.byteLength ?? 0) + (w.absmaxScale?.byteLength ?? 0) + (this.bias?.byteLength ?? 0);
  }

  /** Bits per weight of the matrix: codes and absmax storage, plus the 4-byte offset when double-quantized. */
  get bitsPerParameter(): number {
    const offset = this.weights.absmaxCodes ? 4 : 0;
    return ((this.bytes - (this.bias?.byteLength ?? 0) + offset) * 8) / this.parameters;
  }

  forward(x: Tensor, out: Tensor): void {
    this.kernel(x, this.weights, this.bias, out);
  }

  dispose(): void {
    const w = this.weights;
    for (const t of [w.codes, w.absmax, w.absmaxCodes, w.absmaxScale, this.bias]) t?.dispose();
  }
}
