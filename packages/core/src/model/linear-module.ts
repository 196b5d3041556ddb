import type { Backend } from '../backend/backend.js';
import type { KernelSignatures } from '../backend/kernel-signatures.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * A linear layer as the model sees it. Technique packages replace these (patchModel) or keep them
 * and register a `linear` kernel for their weight dtype.
 */
export interface LinearModule {
  readonly name: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Bytes of parameters held (weights, scales, zeros, bias). */
  readonly bytes: number;
  /** The weight format, for reports (e.g. 'f16', 'q4_0', 'nf4'); a module may leave it out. */
  readonly dtype?: string;
  /** out[T, outFeatures] = x[T, inFeatures] · Wᵀ + b */
  forward(x: Tensor, out: Tensor): void;
  dispose(): void;
}

/** The default: a weight tensor (any dtype with a registered `linear` kernel) and an optional bias. */
export class DenseLinear implements LinearModule {
  readonly inFeatures: number;
  readonly outFeatures: number;
  private readonly kernel: KernelSignatures['linear'];

  constructor(
    readonly name: string,
    backend: Backend,
    readonly weight: Tensor,
    readonly bias: Tensor | null = null,
  ) {
    [this.outFeatures, this.inFeatures] = weight.shape;
    this.kernel = backend.kernels.get(backend.name, 'linear', weight.dtype);
  }

  get bytes(): number {
    return this.weight.byteLength + (this.bias?.byteLength ?? 0);
  }

  get dtype(): string {
    return this.weight.dtype;
  }

  forward(x: Tensor, out: Tensor): void {
    this.kernel(x, this.weight, this.bias, out);
  }

  dispose(): void {
    this.weight.dispose();
    this.bias?.dispose();
  }
}
