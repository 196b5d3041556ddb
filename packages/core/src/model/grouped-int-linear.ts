import type { Backend } from '../backend/backend.js';
import { linearGroupedIntCpu } from '../backends/cpu/kernels/linear-grouped-int.js';
import { linearGroupedIntWebGpu } from '../backends/webgpu/kernels/linear-grouped-int.js';
import { checkGroupedIntData, groupCount, type GroupedIntBits, type GroupedIntData } from '../quant/grouped-int.js';
import type { Tensor } from '../tensor/tensor.js';
import type { LinearModule } from './linear-module.js';

/** A grouped integer weight on a backend, as the kernels read it (layout: quant/grouped-int.ts). */
export interface GroupedIntWeights {
  readonly name: string;
  readonly bits: GroupedIntBits;
  readonly outFeatures: number;
  readonly inFeatures: number;
  readonly groupSize: number;
  /** i32 [out · wordsPerRow]: the packed codes (read as u32). */
  readonly codes: Tensor;
  /** f16 [out · groups]. */
  readonly scales: Tensor;
  /** u8 [out · groups]. */
  readonly zeros: Tensor;
  /** i32 [in], or null for the identity. */
  readonly perm: Tensor | null;
}

/** The contract a backend's grouped-int kernel meets (registered as op 'linearGroupedInt'). */
export type LinearGroupedIntKernel = (x: Tensor, w: GroupedIntWeights, bias: Tensor | null, out: Tensor) => void;

export const LINEAR_GROUPED_INT_OP = 'linearGroupedInt';

function kernelFor(backend: Backend): LinearGroupedIntKernel {
  if (backend.kernels.has(backend.name, LINEAR_GROUPED_INT_OP)) return backend.kernels.get(backend.name, LINEAR_GROUPED_INT_OP) as LinearGroupedIntKernel;
  // The wasm backend's tensors are typed-array views too: the TypeScript kernel reads them as they are.
  if (backend.name === 'cpu' || backend.name === 'wasm') return linearGroupedIntCpu;
  if (backend.name === 'webgpu') return linearGroupedIntWebGpu;
  throw new Error(`grouped int weights: backend '${backend.name}' has no '${LINEAR_GROUPED_INT_OP}' kernel; they run on cpu, wasm and webgpu, or with a plugin that registers one`);
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * A linear layer with grouped integer weights (GPTQ, AWQ): packed codes, f16 group scales, zero
 * points and an optional act-order permutation on the backend; the kernel dequantizes inside the
 * product, so no float copy of the matrix exists.
 */
export class GroupedIntLinear implements LinearModule {
  readonly inFeatures: number;
  readonly outFeatures: number;
  private readonly kernel: LinearGroupedIntKernel;

  constructor(
    readonly weights: GroupedIntWeights,
    backend: Backend,
    /** The layer's bias, owned by the module. */
    readonly bias: Tensor | null = null,
  ) {
    this.inFeatures = weights.inFeatures;
    this.outFeatures = weights.outFeatures;
    this.kernel = kernelFor(backend);
  }

  get name(): string {
    return this.weights.name;
  }

  /** Uploads host arrays (checked) to the backend as a module. */
  static fromData(name: string, backend: Backend, d: GroupedIntData, bias: Tensor | null = null): GroupedIntLinear {
    checkGroupedIntData(d, name);
    const groups = groupCount(d.inFeatures, d.groupSize);
    const weights: GroupedIntWeights = {
      name,
      bits: d.bits,
      outFeatures: d.outFeatures,
      inFeatures: d.inFeatures,
      groupSize: d.groupSize,
      codes: backend.upload(bytesOf(d.codes), [d.codes.length], 'i32', 'weights'),
      scales: backend.upload(bytesOf(d.scales), [d.outFeatures * groups], 'f16', 'weights'),
      zeros: backend.upload(bytesOf(d.zeros), [d.outFeatures * groups], 'u8', 'weights'),
      perm: d.perm ? backend.upload(bytesOf(d.perm), [d.inFeatures], 'i32', 'weights') : null,
    };
    return new GroupedIntLinear(weights, backend, bias);
  }

  /** Parameters of the weight matrix (not the bias). */
  get parameters(): number {
    return this.inFeatures * this.outFeatures;
  }

  /** Bytes held on the backend: codes, scales, zeros, permutation, bias. */
  get bytes(): number {
    const w = this.weights;
    return w.codes.byteLength + w.scales.byteLength + w.zeros.byteLength + (w.perm?.byteLength ?? 0) + (this.bias?.byteLength ?? 0);
  }

  forward(x: Tensor, out: Tensor): void {
    this.kernel(x, this.weights, this.bias, out);
  }

  dispose(): void {
    const w = this.weights;
    for (const t of [w.codes, w.scales, w.zeros, w.perm, this.bias]) t?.dispose();
  }
}
