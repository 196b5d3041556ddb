/**
 * f32 -> block formats with llama.cpp's reference rounding (quantize_row_*_ref), so a file this
 * writes holds the same bytes llama.cpp's converter would. Arithmetic is done in f32 (Math.fround)
 * as in C.
 */
import { f32ToF16 } from '../tensor/half.js';
import { BLOCK_FORMATS, type BlockFormat } from './formats.js';

const fr = Math.fround;

function blocks(x: Float32Array, size: number, format: string): number {
  if (x.length % size !== 0) throw new Error(`quantize ${format}: ${x.length} values do not fill whole blocks of ${size}`);
  return x.length / size;
}

function putF16(out: Uint8Array, p: number, v: number): void {
  const h = f32ToF16(v);
  out[p] = h & 0xff;
  out[p + 1] = h >>> 8;
}

/** C's roundf: halves away from zero. */
function roundAway(v: number): number {
  return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}

/** q8_0: d = amax / 127, q = round(x / d). */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const nb = blocks(x, 32, 'q8_0');
  const out = new Uint8Array(nb * 34);
  for (let b = 0; b < nb; b++) {
    const xo = b * 32;
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[xo + j]));
    const d = fr(amax / 127);
    const id = d ? fr(1 / d) : 0;
    const p = b * 34;
    putF16(out, p, d);
    for (let j = 0; j < 32; j++) out[p + 2 + j] = roundAway(fr(x[xo + j] * id)) & 0xff;
  }
  return out;
}

/** q4_0: d = max / -8 (max = the value of largest magnitude, with its sign), q = min(15, trunc(x / d + 8.5)). */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  const nb = blocks(x, 32, 'q4_0');
  const out = new Uint8Array(nb * 18);
  for (let b = 0; b < nb; b++) {
    const xo = b * 32;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[xo + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fr(max / -8);
    const id = d ? fr(1 / d) : 0;
    const p = b * 18;
    putF16(out, p, d);
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, Math.trunc(fr(fr(x[xo + j] * id) + 8.5)));
      const q1 = Math.min(15, Math.trunc(fr(fr(x[xo + 16 + j] * id) + 8.5)));
      out[p + 2 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

/** q4_1: d = (max - min) / 15, m = min, q = min(15, trunc((x - min) / d + 0.5)). */
export function quantizeQ4_1(x: Float32Array): Uint8Array {
  const nb = blocks(x, 32, 'q4_1');
  const out = new Uint8Array(nb * 20);
  for (let b = 0; b < nb; b++) {
    const xo = b * 32;
    let min = Infinity;
    let max = -Infinity;
    for (let j = 0; j < 32; j++) {
      min = Math.min(min, x[xo + j]);
      max = Math.max(max, x[xo + j]);
    }
    const d = fr((max - min) / 15);
    const id = d ? fr(1 / d) : 0;
    const p = b * 20;
    putF16(out, p, d);
    putF16(out, p + 2, min);
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, Math.trunc(fr(fr(fr(x[xo + j] - min) * id) + 0.5)));
      const q1 = Math.min(15, Math.trunc(fr(fr(fr(x[xo + 16 + j] - min) * id) + 0.5)));
      out[p + 4 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

const QUANTIZERS: Partial<Record<BlockFormat, (x: Float32Array) => Uint8Array>> = {
  q8_0: quantizeQ8_0,
  q4_0: quantizeQ4_0,
  q4_1: quantizeQ4_1,
};

/** Formats lithe can write (the k-quants are read-only). */
export const QUANTIZABLE_FORMATS = Object.keys(QUANTIZERS) as BlockFormat[];

export function quantize(format: BlockFormat, x: Float32Array): Uint8Array {
  const q = QUANTIZERS[format];
  if (!q) throw new Error(`quantizing to ${format} is not supported (lithe writes ${QUANTIZABLE_FORMATS.join(', ')}; ${format} can only be read)`);
  return q(x);
}

/** Bytes `n` values take in `format`. */
export function quantizedBytes(format: BlockFormat, n: number): number {
  const { blockSize, blockBytes } = BLOCK_FORMATS[format];
  return Math.ceil(n / blockSize) * blockBytes;
}
