import type { KernelSignatures } from './kernel-signatures.js';

export type OpName = keyof KernelSignatures;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyKernel = (...args: any[]) => void;

export interface RegisterOptions {
  /** A sub-key such as a weight dtype ('q4_0') or a KV cache kind ('int8'). */
  variant?: string;
  /** Replace an existing registration instead of failing. */
  override?: boolean;
}

const key = (backend: string, op: string, variant?: string) => `${backend}/${op}${variant ? `:${variant}` : ''}`;

/**
 * Kernels keyed by (backend, op, variant). A registry may have a parent: each pipeline gets a child
 * of the global registry, so a plugin's kernels never leak into another pipeline.
 */
export class KernelRegistry {
  private readonly kernels = new Map<string, AnyKernel>();

  constructor(private readonly parent?: KernelRegistry) {}

  register<K extends OpName>(backend: string, op: K, kernel: KernelSignatures[K], options?: RegisterOptions): void;
  register(backend: string, op: string, kernel: AnyKernel, options?: RegisterOptions): void;
  register(backend: string, op: string, kernel: AnyKernel, options: RegisterOptions = {}): void {
    const k = key(backend, op, options.variant);
    if (this.kernels.has(k) && !options.override) {
      throw new Error(`a kernel for ${k} is already registered; pass { override: true } to replace it`);
    }
    this.kernels.set(k, kernel);
  }

  has(backend: string, op: string, variant?: string): boolean {
    return this.lookup(key(backend, op, variant)) !== undefined;
  }

  /** The kernel for (backend, op, variant); the plain op when no variant is given. */
  get<K extends OpName>(backend: string, op: K, variant?: string): KernelSignatures[K];
  get(backend: string, op: string, variant?: string): AnyKernel;
  get(backend: string, op: string, variant?: string): AnyKernel {
    const kernel = this.lookup(key(backend, op, variant));
    if (!kernel) {
      const what = variant ? `op '${op}' with variant '${variant}'` : `op '${op}'`;
      throw new Error(`backend '${backend}' has no kernel for ${what}; a plugin that provides it may be missing`);
    }
    return kernel;
  }

  /** A registry that sees these kernels and can add its own without changing this one. */
  child(): KernelRegistry {
    return new KernelRegistry(this);
  }

  private lookup(k: string): AnyKernel | undefined {
    return this.kernels.get(k) ?? this.parent?.lookup(k);
  }
}

/** The registry that core's own kernels register into. */
export const globalKernels = new KernelRegistry();
