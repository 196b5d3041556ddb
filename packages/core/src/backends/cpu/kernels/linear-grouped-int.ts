import type { GroupedIntWeights } from '../../../model/grouped-int-linear.js';
import { groupCount, wordsPerRow } from '../../../quant/grouped-int.js';
import { F16_TABLE } from '../../../tensor/half.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { dot } from './linear.js';

let xScratch: Float32Array = new Float32Array(0);
let sumScratch: Float32Array = new Float32Array(0);
let rowScratch: Float32Array = new Float32Array(0);

const grow = (a: Float32Array, n: number) => (a.length >= n ? a : new Float32Array(n));

/**
 * out[T, out] = x[T, in] · Wᵀ + b with W in grouped integer codes (quant/grouped-int.ts),
 * dequantized inside the product.
 *
 * x is first gathered through the act-order permutation (when there is one) and summed per group,
 * so each group contributes scale · (Σ x·code − zero · Σ x). Decode (one or two rows, 4 bits,
 * groups of whole words): one pass over the packed words, eight codes per 32-bit load. Otherwise
 * each weight row is decoded once into a row buffer and reused for every row of x.
 */
export function linearGroupedIntCpu(x: Tensor, w: GroupedIntWeights, bias: Tensor | null, out: Tensor): void {
  const { inFeatures: inF, outFeatures: outF, groupSize: G, bits } = w;
  const rows = x.size / inF;
  if (!Number.isInteger(rows) || out.size !== rows * outF) throw new Error(`linearGroupedInt ${w.name}: x ${x} and out ${out} do not fit a [${outF}, ${inF}] weight`);
  const groups = groupCount(inF, G);
  const wpr = wordsPerRow(inF, bits);
  const ys = out.handle as Float32Array;
  const bs = bias ? (bias.handle as Float32Array) : null;
  const raw = w.codes.handle as Int32Array;
  const codes = new Uint32Array(raw.buffer, raw.byteOffset, raw.length);
  const scales = w.scales.handle as Uint16Array;
  const zeros = w.zeros.handle as Uint8Array;

  let xs: Float32Array = x.handle as Float32Array;
  if (w.perm) {
    const perm = w.perm.handle as Int32Array;
    xScratch = grow(xScratch, rows * inF);
    const src = xs;
    for (let t = 0; t < rows; t++) for (let j = 0, o = t * inF; j < inF; j++) xScratch[o + j] = src[o + perm[j]];
    xs = xScratch;
  }

  if (rows <= 2 && bits === 4 && G % 8 === 0 && inF % 8 === 0) {
    sumScratch = grow(sumScratch, rows * groups);
    for (let t = 0; t < rows; t++) {
      for (let g = 0; g < groups; g++) {
        let s = 0;
        for (let j = t * inF + g * G, end = t * inF + Math.min(inF, (g + 1) * G); j < end; j++) s += xs[j];
        sumScratch[t * groups + g] = s;
      }
    }
    for (let t = 0; t < rows; t++) {
      const xo = t * inF;
      for (let o = 0; o < outF; o++) {
        let acc = 0;
        let word = o * wpr;
        let xi = xo;
        for (let g = 0; g < groups; g++) {
          const wordsInGroup = Math.min(G, inF - g * G) >> 3;
          let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          for (const end = word + wordsInGroup; word < end; word++, xi += 8) {
            const v = codes[word];
            s0 += xs[xi] * (v & 15) + xs[xi + 4] * ((v >>> 16) & 15);
            s1 += xs[xi + 1] * ((v >>> 4) & 15) + xs[xi + 5] * ((v >>> 20) & 15);
            s2 += xs[xi + 2] * ((v >>> 8) & 15) + xs[xi + 6] * ((v >>> 24) & 15);
            s3 += xs[xi + 3] * ((v >>> 12) & 15) + xs[xi + 7] * (v >>> 28);
          }
          const k = o * groups + g;
          acc += F16_TABLE[scales[k]] * (s0 + s1 + s2 + s3 - zeros[k] * sumScratch[t * groups + g]);
        }
        ys[t * outF + o] = acc + (bs ? bs[o] : 0);
      }
    }
    return;
  }

  rowScratch = grow(rowScratch, inF);
  const row = rowScratch;
  const mask = (1 << bits) - 1;
  for (let o = 0; o < outF; o++) {
    // Decode row o (stored column order) into f32: scale · (code − zero).
    const base = o * wpr;
    for (let g = 0; g < groups; g++) {
      const k = o * groups + g;
      const s = F16_TABLE[scales[k]];
      const z = zeros[k];
      for (let j = g * G, end = Math.min(inF, (g + 1) * G); j < end; j++) {
        const bit = j * bits;
        const wi = base + (bit >>> 5), sh = bit & 31;
        let v = codes[wi] >>> sh;
        if (sh + bits > 32) v |= codes[wi + 1] << (32 - sh);
        row[j] = s * ((v & mask) - z);
      }
    }
    const b = bs ? bs[o] : 0;
    for (let t = 0; t < rows; t++) ys[t * outF + o] = dot(xs, t * inF, row, 0, inF) + b;
  }
}
