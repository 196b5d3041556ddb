import { BF16_TABLE, dot, F16_TABLE, f32ToBf16, f32ToF16, type Tensor } from '@lithe/core';
import type { FourBitWeights } from '../four-bit-weights.js';

const ROUND: Record<FourBitWeights['computeDType'], (v: number) => number> = {
  f32: Math.fround,
  f16: (v) => F16_TABLE[f32ToF16(v)],
  bf16: (v) => BF16_TABLE[f32ToBf16(v)],
};

/** absmax of block b: stored, or decoded from its 8-bit code, the nested scale and the offset. */
function absmaxReader(w: FourBitWeights): (b: number) => number {
  if (w.absmax) {
    const a = w.absmax.handle as Float32Array;
    return (b) => a[b];
  }
  const codes = w.absmaxCodes!.handle as Uint8Array;
  const scale = w.absmaxScale!.handle as Float32Array;
  const { nestedMap: map, nestedBlockSize: nb, offset } = w;
  const f = Math.fround;
  return (b) => f(f(map[codes[b]] * scale[Math.floor(b / nb)]) + offset);
}

let scratch = new Float32Array(0);
const table = new Float32Array(16);

/**
 * Decodes weight row o into dst: per block, the 16 codebook values times the block's absmax
 * (rounded to the compute dtype), then one lookup per element. Handles blocks that cross rows and
 * rows that start in the middle of a byte.
 */
function decodeRow(w: FourBitWeights, o: number, dst: Float32Array, absmaxOf: (b: number) => number): void {
  const { inFeatures: inF, blockSize: B, codebook: cb } = w;
  const codes = w.codes.handle as Uint8Array;
  const round = ROUND[w.computeDType];
  let e = o * inF;
  const end = e + inF;
  let i = 0;
  while (e < end) {
    const b = Math.floor(e / B);
    const segEnd = Math.min(end, (b + 1) * B);
    const s = absmaxOf(b);
    for (let k = 0; k < 16; k++) table[k] = round(cb[k] * s);
    for (; e < segEnd; e++, i++) {
      const byte = codes[e >> 1];
      dst[i] = table[e & 1 ? byte & 15 : byte >> 4];
    }
  }
}

/**
 * out[T, out] = x[T, in] · Wᵀ + b with W in 4-bit blocks, dequantized inside the product.
 *
 * Decode (one or two rows of x, f32 compute, rows made of whole blocks of a multiple of 8): one
 * pass over the packed codes, eight per 32-bit load, each looked up in the 16-entry codebook; the
 * block's absmax multiplies the block's partial sum once. Otherwise (prefill, other layouts, f16/bf16
 * compute) each weight row is decoded once into a row buffer and reused for every row of x, so at
 * most one dequantized row exists at a time.
 */
export function linear4bitCpu(x: Tensor, w: FourBitWeights, bias: Tensor | null, out: Tensor): void {
  const { inFeatures: inF, outFeatures: outF, blockSize: B } = w;
  const xs = x.handle as Float32Array;
  const ys = out.handle as Float32Array;
  const bs = bias ? (bias.handle as Float32Array) : null;
  const rows = x.size / inF;
  if (!Number.isInteger(rows) || out.size !== rows * outF) throw new Error(`linear4bit ${w.name}: x ${x} and out ${out} do not fit a [${outF}, ${inF}] weight`);
  const absmaxOf = absmaxReader(w);

  const codes = w.codes.handle as Uint8Array;
  if (rows <= 2 && w.computeDType === 'f32' && B % 8 === 0 && inF % B === 0 && codes.byteOffset % 4 === 0) {
    // Eight codes per 32-bit load (little-endian: byte k holds elements 2k (high) and 2k+1 (low)).
    const words = new Uint32Array(codes.buffer, codes.byteOffset, codes.length >> 2);
    const cb = w.codebook;
    const blocksPerRow = inF / B;
    const wordsPerBlock = B >> 3;
    for (let t = 0; t < rows; t++) {
      const xo = t * inF;
      for (let o = 0; o < outF; o++) {
        let acc = 0;
        let j = (o * inF) >> 3;
        let b = o * blocksPerRow;
        let xi = xo;
        for (let k = 0; k < blocksPerRow; k++, b++) {
          let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          for (const jEnd = j + wordsPerBlock; j < jEnd; j++, xi += 8) {
            const v = words[j];
            s0 += xs[xi] * cb[(v >>> 4) & 15] + xs[xi + 4] * cb[(v >>> 20) & 15];
            s1 += xs[xi + 1] * cb[v & 15] + xs[xi + 5] * cb[(v >>> 16) & 15];
            s2 += xs[xi + 2] * cb[(v >>> 12) & 15] + xs[xi + 6] * cb[(v >>> 28) & 15];
            s3 += xs[xi + 3] * cb[(v >>> 8) & 15] + xs[xi + 7] * cb[(v >>> 24) & 15];
          }
          acc += absmaxOf(b) * (s0 + s1 + s2 + s3);
        }
        ys[t * outF + o] = acc + (bs ? bs[o] : 0);
      }
    }
    return;
  }

  if (scratch.length < inF) scratch = new Float32Array(inF);
  const row = scratch.subarray(0, inF);
  for (let o = 0; o < outF; o++) {
    decodeRow(w, o, row, absmaxOf);
    const b = bs ? bs[o] : 0;
    for (let t = 0; t < rows; t++) ys[t * outF + o] = dot(xs, t * inF, row, 0, inF) + b;
  }
}
