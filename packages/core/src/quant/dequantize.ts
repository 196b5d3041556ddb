/**
 * Block formats -> f32, exactly as ggml's dequantize_row_* (for tests, conversion and tools; the
 * kernels never make a dequantized copy of a weight).
 */
import { F16_TABLE } from '../tensor/half.js';
import { BLOCK_FORMATS, type BlockFormat } from './formats.js';

const h = (b: Uint8Array, p: number): number => F16_TABLE[b[p] | (b[p + 1] << 8)];

function outFor(bytes: Uint8Array, format: BlockFormat, out?: Float32Array): Float32Array {
  const { blockSize, blockBytes } = BLOCK_FORMATS[format];
  if (bytes.length % blockBytes !== 0) throw new Error(`dequantize ${format}: ${bytes.length} bytes are not whole blocks of ${blockBytes}`);
  const n = (bytes.length / blockBytes) * blockSize;
  if (out && out.length < n) throw new Error(`dequantize ${format}: output holds ${out.length} values, need ${n}`);
  return out ?? new Float32Array(n);
}

export function dequantizeQ8_0(bytes: Uint8Array, out?: Float32Array): Float32Array {
  const y = outFor(bytes, 'q8_0', out);
  for (let b = 0, p = 0; p < bytes.length; b++, p += 34) {
    const d = h(bytes, p);
    for (let j = 0; j < 32; j++) y[b * 32 + j] = ((bytes[p + 2 + j] << 24) >> 24) * d;
  }
  return y;
}

export function dequantizeQ4_0(bytes: Uint8Array, out?: Float32Array): Float32Array {
  const y = outFor(bytes, 'q4_0', out);
  for (let b = 0, p = 0; p < bytes.length; b++, p += 18) {
    const d = h(bytes, p);
    for (let j = 0; j < 16; j++) {
      const q = bytes[p + 2 + j];
      y[b * 32 + j] = ((q & 15) - 8) * d;
      y[b * 32 + 16 + j] = ((q >> 4) - 8) * d;
    }
  }
  return y;
}

export function dequantizeQ4_1(bytes: Uint8Array, out?: Float32Array): Float32Array {
  const y = outFor(bytes, 'q4_1', out);
  for (let b = 0, p = 0; p < bytes.length; b++, p += 20) {
    const d = h(bytes, p);
    const m = h(bytes, p + 2);
    for (let j = 0; j < 16; j++) {
      const q = bytes[p + 4 + j];
      y[b * 32 + j] = Math.fround((q & 15) * d) + m;
      y[b * 32 + 16 + j] = Math.fround((q >> 4) * d) + m;
    }
  }
  return y;
}

/** The 6-bit scale and min of sub-block j (0..7) of a q4_k block's 12 scale bytes at `s`. */
export function q4kScaleMin(bytes: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [bytes[s + j] & 63, bytes[s + j + 4] & 63];
  return [(bytes[s + j + 4] & 15) | ((bytes[s + j - 4] >> 6) << 4), (bytes[s + j + 4] >> 4) | ((bytes[s + j] >> 6) << 4)];
}

export function dequantizeQ4_K(bytes: Uint8Array, out?: Float32Array): Float32Array {
  const y = outFor(bytes, 'q4_k', out);
  for (let b = 0, p = 0; p < bytes.length; b++, p += 144) {
    const d = h(bytes, p);
    const dmin = h(bytes, p + 2);
    let o = b * 256;
    let q = p + 16;
    for (let j = 0; j < 8; j += 2, q += 32) {
      const [sc1, m1] = q4kScaleMin(bytes, p + 4, j);
      const [sc2, m2] = q4kScaleMin(bytes, p + 4, j + 1);
      const d1 = Math.fround(d * sc1), mm1 = Math.fround(dmin * m1);
      const d2 = Math.fround(d * sc2), mm2 = Math.fround(dmin * m2);
      for (let l = 0; l < 32; l++) y[o++] = Math.fround(d1 * (bytes[q + l] & 15)) - mm1;
      for (let l = 0; l < 32; l++) y[o++] = Math.fround(d2 * (bytes[q + l] >> 4)) - mm2;
    }
  }
  return y;
}

export function dequantizeQ6_K(bytes: Uint8Array, out?: Float32Array): Float32Array {
  const y = outFor(bytes, 'q6_k', out);
  for (let b = 0, p = 0; p < bytes.length; b++, p += 210) {
    const d = h(bytes, p + 208);
    for (let n = 0; n < 2; n++) {
      const ql = p + n * 64;
      const qh = p + 128 + n * 32;
      const sc = p + 192 + n * 8;
      const o = b * 256 + n * 128;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const hb = bytes[qh + l];
        const q1 = ((bytes[ql + l] & 15) | ((hb & 3) << 4)) - 32;
        const q2 = ((bytes[ql + l + 32] & 15) | (((hb >> 2) & 3) << 4)) - 32;
        const q3 = ((bytes[ql + l] >> 4) | (((hb >> 4) & 3) << 4)) - 32;
        const q4 = ((bytes[ql + l + 32] >> 4) | (((hb >> 6) & 3) << 4)) - 32;
        const s = (i: number) => Math.fround(d * ((bytes[sc + is + i] << 24) >> 24));
        y[o + l] = s(0) * q1;
        y[o + l + 32] = s(2) * q2;
        y[o + l + 64] = s(4) * q3;
        y[o + l + 96] = s(6) * q4;
      }
    }
  }
  return y;
}

const DEQUANTIZERS: Record<BlockFormat, (bytes: Uint8Array, out?: Float32Array) => Float32Array> = {
  q8_0: dequantizeQ8_0,
  q4_0: dequantizeQ4_0,
  q4_1: dequantizeQ4_1,
  q4_k: dequantizeQ4_K,
  q6_k: dequantizeQ6_K,
};

export function dequantize(format: BlockFormat, bytes: Uint8Array, out?: Float32Array): Float32Array {
  return DEQUANTIZERS[format](bytes, out);
}
