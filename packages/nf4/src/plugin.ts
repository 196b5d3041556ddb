import { decodeHalfInto, definePlugin, type Backend, type LithePlugin, type Tensor, type Weight, type WeightInfo } from '@lithe/core';
import { FourBitLinear, LINEAR_4BIT_OP, type ComputeDType } from './four-bit-weights.js';
import { linear4bitCpu } from './kernels/cpu-linear-4bit.js';
import { linear4bitWasm } from './kernels/wasm-linear-4bit.js';
import { linear4bitWebGpu } from './kernels/webgpu-linear-4bit.js';
import { checkBlockSize, DEFAULT_BLOCK_SIZE, quantize4bit, type QuantizeOptions } from './quantize.js';
import type { FourBitType } from './codebooks.js';
import { quantStateName, readQuantized, type TensorReader } from './checkpoint.js';

export interface Nf4Options {
  /** 'nf4' (NormalFloat, default) or 'fp4'. */
  type?: FourBitType;
  /** Values per absmax block; default 64. */
  blockSize?: number;
  /** 8-bit double quantization of the absmax (default true): ~4.127 bits/param instead of 4.5. */
  doubleQuant?: boolean;
  /** Dtype the dequantized weights are rounded to before the product (default f32, exact). */
  computeDType?: ComputeDType;
  /**
   * Linear weights left in full precision: any whose HF name contains one of these strings
   * (bitsandbytes' `llm_int8_skip_modules`). Default ['lm_head']: the output projection stays
   * unquantized, as transformers does. Embeddings and norms are never quantized.
   */
  skipModules?: string[];
}

export interface ResolvedNf4Options extends Required<Omit<Nf4Options, 'skipModules'>> {
  skipModules: string[];
}

export function resolveNf4Options(o: Nf4Options = {}): ResolvedNf4Options {
  const r: ResolvedNf4Options = {
    type: o.type ?? 'nf4',
    blockSize: o.blockSize ?? DEFAULT_BLOCK_SIZE,
    doubleQuant: o.doubleQuant ?? true,
    computeDType: o.computeDType ?? 'f32',
    skipModules: o.skipModules ?? ['lm_head'],
  };
  if (r.type !== 'nf4' && r.type !== 'fp4') throw new Error(`nf4: type must be 'nf4' or 'fp4', got '${String(r.type)}'`);
  if (!['f32', 'f16', 'bf16'].includes(r.computeDType)) throw new Error(`nf4: computeDType must be f32, f16 or bf16, got '${String(r.computeDType)}'`);
  checkBlockSize(r.blockSize);
  return r;
}

/** Whether a weight becomes 4-bit under these options: linear layers (and lm_head) not skipped. */
export function isQuantizedWeight(info: Pick<WeightInfo, 'name' | 'role'>, o: Pick<ResolvedNf4Options, 'skipModules'>): boolean {
  return (info.role === 'linear' || info.role === 'lm_head') && !o.skipModules.some((s) => info.name.includes(s));
}

/** The f32 values of a weight tensor (its own storage on the CPU when already f32). */
export async function floatValues(t: Tensor): Promise<Float32Array> {
  const cpu = t.backend.name === 'cpu';
  const raw = cpu ? (t.handle as Float32Array | Uint16Array) : await t.backend.read(t);
  if (t.dtype === 'f32') return raw as Float32Array;
  if (t.dtype === 'f16' || t.dtype === 'bf16') {
    const out = new Float32Array(t.size);
    decodeHalfInto(raw as Uint16Array, t.dtype as 'f16' | 'bf16', out);
    return out;
  }
  throw new Error(`nf4: cannot quantize a ${t.dtype} tensor; expected f32, f16 or bf16`);
}

export function registerKernels(backend: Backend, kernels = backend.kernels): void {
  kernels.register('cpu', LINEAR_4BIT_OP, linear4bitCpu, { override: true });
  // Core's SIMD 4-bit codebook kernel, or the CPU one where the layout does not fit it.
  kernels.register('wasm', LINEAR_4BIT_OP, linear4bitWasm, { override: true });
  kernels.register('webgpu', LINEAR_4BIT_OP, linear4bitWebGpu, { override: true });
}

/** The 4-bit type a weight is stored in by a bitsandbytes-layout checkpoint, if it is. */
function storedType(source: TensorReader, name: string): FourBitType | null {
  for (const type of ['nf4', 'fp4'] as const) if (source.info(quantStateName(name, type))) return type;
  return null;
}

/**
 * NF4 / FP4 weights (QLoRA, bitsandbytes): each linear weight is quantized blockwise to 4 bits as
 * it loads, the full-precision tensor is freed, and the layer becomes a `FourBitLinear` whose
 * kernel dequantizes inside the matrix product. Weights already stored 4-bit (a checkpoint written
 * by `quantizeModelDir`, or by bitsandbytes + transformers) load as they are.
 */
export const nf4 = definePlugin((options: Nf4Options | void): LithePlugin => {
  const o = resolveNf4Options(options ?? {});
  const q: QuantizeOptions = { type: o.type, blockSize: o.blockSize, doubleQuant: o.doubleQuant };
  const moduleName = (weight: string) => weight.replace(/\.weight$/, '');
  return {
    name: 'nf4',
    setup(ctx) {
      registerKernels(ctx.backend, ctx.kernels);
    },
    async loadWeight(req, source, ctx) {
      const type = storedType(source, req.name);
      if (!type) return undefined;
      const stored = await readQuantized(source, req.name, type);
      return FourBitLinear.fromQuantized(moduleName(req.name), ctx.backend, stored, o.computeDType, req.bias ?? null);
    },
    async transformWeights(tensor, info, ctx): Promise<Weight> {
      if (!isQuantizedWeight(info, o)) return tensor;
      const quantized = quantize4bit(await floatValues(tensor), tensor.shape, q);
      tensor.dispose();
      return FourBitLinear.fromQuantized(moduleName(info.name), ctx.backend, quantized, o.computeDType, info.bias ?? null);
    },
  };
});
