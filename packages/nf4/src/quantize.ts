/**
 * Blockwise 4-bit quantization as bitsandbytes does it (`quantize_4bit` / `dequantize_4bit`), on
 * plain arrays. Blocks of `blockSize` run over the flattened row-major weight, so a block may cross
 * rows; the last block may be short. Each block keeps its absmax; values are divided by it (as a
 * float32 multiply by 1/absmax) and rounded to the nearest codebook entry. Two codes share a byte:
 * element 2j in the high nibble of byte j, element 2j+1 in the low nibble.
 *
 * Double quantization (`compress_statistics=True`): the absmax values minus their mean are quantized
 * blockwise (blocks of 256) to 8 bits with the dynamic map; the mean is kept as an offset.
 */
import { DYNAMIC_MAP, codebook, quantizeToMap, quantizer, type FourBitType } from './codebooks.js';

const f = Math.fround;

export interface QuantizeOptions {
  type?: FourBitType;
  /** Values per absmax block (bitsandbytes: 64). */
  blockSize?: number;
  /** Quantize the absmax constants to 8 bits (bitsandbytes `compress_statistics`, QLoRA default). */
  doubleQuant?: boolean;
  /** Absmax values per block of the second quantization (bitsandbytes: 256). */
  nestedBlockSize?: number;
}

/** The 8-bit double-quantized absmax: absmax[b] = map[codes[b]] · scale[b / nestedBlockSize] + offset. */
export interface NestedAbsmax {
  codes: Uint8Array;
  scale: Float32Array;
  offset: number;
  blockSize: number;
  map: Float32Array;
}

export interface QuantizedTensor {
  type: FourBitType;
  /** The original shape ([out, in] for a linear weight). */
  shape: number[];
  blockSize: number;
  /** ceil(n / 2) bytes of 4-bit codes. */
  codes: Uint8Array;
  /** The 16 values a code stands for (times the block's absmax). */
  codebook: Float32Array;
  /** One float32 absmax per block, or null when double-quantized. */
  absmax: Float32Array | null;
  nested: NestedAbsmax | null;
}

export const DEFAULT_BLOCK_SIZE = 64;
export const NESTED_BLOCK_SIZE = 256;

export function checkBlockSize(blockSize: number, what = 'blockSize'): void {
  if (!Number.isSafeInteger(blockSize) || blockSize < 2 || blockSize % 2 !== 0) {
    throw new RangeError(`nf4: ${what} must be an even integer >= 2 (bitsandbytes uses 64), got ${blockSize}`);
  }
}

/** Quantizes `values` (the flattened tensor of `shape`) blockwise to 4 bits. */
export function quantize4bit(values: ArrayLike<number>, shape: readonly number[], opts: QuantizeOptions = {}): QuantizedTensor {
  const type = opts.type ?? 'nf4';
  const B = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
  checkBlockSize(B);
  const n = values.length;
  const expected = shape.reduce((a, b) => a * b, 1);
  if (expected !== n) throw new Error(`nf4: ${n} values for shape [${shape.join(', ')}] (${expected} expected)`);
  const q = quantizer(type);
  const nBlocks = Math.ceil(n / B);
  const absmax = new Float32Array(nBlocks);
  const codes = new Uint8Array(Math.ceil(n / 2));
  for (let b = 0; b < nBlocks; b++) {
    const start = b * B;
    const end = Math.min(n, start + B);
    let m = 0;
    for (let i = start; i < end; i++) m = Math.max(m, Math.abs(values[i]));
    absmax[b] = m;
    // An all-zero block stores absmax 0; its codes (those of 0) decode to 0 whatever they are.
    const inv = m > 0 ? f(1 / f(m)) : 0;
    for (let i = start; i < end; i++) {
      const c = q(f(values[i] * inv));
      if (i & 1) codes[i >> 1] |= c;
      else codes[i >> 1] = c << 4;
    }
  }
  const base = { type, shape: [...shape], blockSize: B, codes, codebook: codebook(type) };
  if (!(opts.doubleQuant ?? true)) return { ...base, absmax, nested: null };
  return { ...base, absmax: null, nested: quantizeAbsmax(absmax, opts.nestedBlockSize ?? NESTED_BLOCK_SIZE) };
}

/** Double quantization of the absmax: subtract the mean, then 8-bit blockwise with the dynamic map. */
export function quantizeAbsmax(absmax: Float32Array, blockSize = NESTED_BLOCK_SIZE, map = DYNAMIC_MAP): NestedAbsmax {
  checkBlockSize(blockSize, 'nestedBlockSize');
  let sum = 0;
  for (const a of absmax) sum += a;
  const offset = f(absmax.length ? sum / absmax.length : 0);
  const n = absmax.length;
  const codes = new Uint8Array(n);
  const scale = new Float32Array(Math.ceil(n / blockSize));
  for (let b = 0; b < scale.length; b++) {
    const start = b * blockSize;
    const end = Math.min(n, start + blockSize);
    let m = 0;
    for (let i = start; i < end; i++) m = Math.max(m, Math.abs(f(absmax[i] - offset)));
    scale[b] = m;
    const inv = m > 0 ? f(1 / f(m)) : 0;
    for (let i = start; i < end; i++) codes[i] = quantizeToMap(map, f(f(absmax[i] - offset) * inv));
  }
  return { codes, scale, offset, blockSize, map };
}

/** The absmax of every block, as the kernels see it (dequantized when double-quantized). */
export function blockAbsmax(t: QuantizedTensor): Float32Array {
  if (t.absmax) return t.absmax;
  const { codes, scale, offset, blockSize, map } = t.nested!;
  return Float32Array.from(codes, (c, i) => f(f(map[c] * scale[Math.floor(i / blockSize)]) + offset));
}

/** The 4-bit code of element i. */
export function codeAt(codes: Uint8Array, i: number): number {
  const byte = codes[i >> 1];
  return i & 1 ? byte & 15 : byte >> 4;
}

/** The float32 values the quantized tensor stands for (a reference for tests and tools). */
export function dequantize4bit(t: QuantizedTensor): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const absmax = blockAbsmax(t);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = t.codebook[codeAt(t.codes, i)] * absmax[Math.floor(i / t.blockSize)];
  return out;
}

/** Bytes the quantized tensor occupies: codes, absmax (or its codes and scales) and the 4-byte offset. */
export function quantizedBytes(t: QuantizedTensor): number {
  const nested = t.nested ? t.nested.codes.byteLength + t.nested.scale.byteLength + 4 : 0;
  return t.codes.byteLength + (t.absmax?.byteLength ?? 0) + nested;
}

/**
 * Bits per parameter of the format in the limit of large tensors: 4 + 32/B, or with double
 * quantization 4 + 8/B + 32/(B·256) (4.127 for B = 64, against 4.5 without).
 */
export function bitsPerParameter(opts: Pick<QuantizeOptions, 'blockSize' | 'doubleQuant' | 'nestedBlockSize'> = {}): number {
  const B = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (!(opts.doubleQuant ?? true)) return 4 + 32 / B;
  return 4 + 8 / B + 32 / (B * (opts.nestedBlockSize ?? NESTED_BLOCK_SIZE));
}
