/**
 * AWQ's two searches, as AutoAWQ runs them (awq/quantize/quantizer.py), on statistics of the
 * calibration inputs:
 *
 * - scales: for α on a grid of 20 (0, 0.05, …, 0.95), s = mean|x|^α per input channel (or, with
 *   duo scaling, mean|x|^α / mean|ŵ|^(1−α), ŵ the weights over their group's max |w|), normalised
 *   by √(max s · min s); W·diag(s) is quantized and x / s fed to it (the 1/s is folded into the
 *   producer, fold.ts), so channels with large activations keep more precision. The caller scores
 *   each α by the block's output (quantize-model.ts); α = 0 without duo scaling is plain
 *   round-to-nearest.
 * - clip: per (output row, group), the max |w| shrunk over 1, 0.95, …, 0.55; the one whose
 *   quantized group gives the smallest output error on the calibration inputs is kept. The error
 *   of a group is exact over every calibration row: dᵀ·H_g·d with d the weight error and H_g the
 *   group's block of XᵀX (GramBlocks).
 */
import { quantizeGroup } from './quantizer.js';

export const ALPHA_GRID: readonly number[] = Array.from({ length: 20 }, (_, i) => i / 20);
/** AutoAWQ's clip grid: max_shrink 0.5, n_grid 20, so ratios 1 − k/20 for k < 10. */
export const CLIP_RATIOS: readonly number[] = Array.from({ length: 10 }, (_, k) => 1 - k / 20);

/** Per-channel mean |x| and the group-diagonal blocks of XᵀX of one linear input, row by row. */
export class InputStats {
  readonly sumAbs: Float64Array;
  /** groups × groupSize × groupSize, group g's block at g · groupSize². */
  readonly gram: Float64Array;
  rows = 0;

  constructor(
    readonly width: number,
    readonly groupSize: number,
  ) {
    this.sumAbs = new Float64Array(width);
    this.gram = new Float64Array(width * groupSize);
  }

  add(x: Float32Array, rows: number): void {
    const { width: n, groupSize: G, sumAbs, gram } = this;
    for (let r = 0; r < rows; r++) {
      const row = r * n;
      for (let i = 0; i < n; i++) sumAbs[i] += Math.abs(x[row + i]);
      for (let g0 = 0; g0 < n; g0 += G) {
        const block = g0 * G;
        for (let i = 0; i < G; i++) {
          const xi = x[row + g0 + i];
          if (xi === 0) continue;
          const at = block + i * G;
          for (let j = i; j < G; j++) gram[at + j] += xi * x[row + g0 + j];
        }
      }
    }
    this.rows += rows;
  }

  meanAbs(): Float64Array {
    return this.sumAbs.map((v) => v / Math.max(this.rows, 1));
  }

  /** H_g[i, j] for i, j in group g (the block is stored as its upper triangle). */
  at(g: number, i: number, j: number): number {
    const G = this.groupSize;
    return i <= j ? this.gram[g * G * G + i * G + j] : this.gram[g * G * G + j * G + i];
  }
}

/**
 * s = max(mean|x|^α, 1e-4), or with `wMean` (duo scaling) max(mean|x|^α / (wMean^(1−α) + 1e-4), 1e-4),
 * normalised by √(max s · min s), as AutoAWQ computes them.
 */
export function activationScales(meanAbs: ArrayLike<number>, alpha: number, wMean?: ArrayLike<number>): Float32Array {
  const s = new Float32Array(meanAbs.length);
  let max = 0;
  let min = Infinity;
  for (let i = 0; i < s.length; i++) {
    const x = Math.pow(meanAbs[i], alpha);
    const v = Math.max(wMean ? x / (Math.pow(wMean[i], 1 - alpha) + 1e-4) : x, 1e-4);
    s[i] = v;
    if (v > max) max = v;
    if (v < min) min = v;
  }
  const norm = Math.sqrt(max * min);
  for (let i = 0; i < s.length; i++) s[i] /= norm;
  return s;
}

/**
 * Duo scaling's weight statistic for the linears of one group (each [out, in], the same inputs):
 * per input channel, the mean over every output row of |w| / the max |w| of its quantization group.
 */
export function weightMeans(weights: readonly { w: Float32Array; outF: number }[], inF: number, groupSize: number): Float64Array {
  const sum = new Float64Array(inF);
  let rows = 0;
  for (const { w, outF } of weights) {
    for (let o = 0; o < outF; o++) {
      for (let g = 0; g < inF; g += groupSize) {
        let max = 0;
        for (let i = 0; i < groupSize; i++) max = Math.max(max, Math.abs(w[o * inF + g + i]));
        const inv = 1 / (max + 1e-6);
        for (let i = 0; i < groupSize; i++) sum[g + i] += Math.abs(w[o * inF + g + i]) * inv;
      }
    }
    rows += outF;
  }
  return sum.map((v) => v / rows);
}

/** W·diag(s) for a weight [out, in]. */
export function scaleColumns(w: Float32Array, outF: number, inF: number, s: Float32Array): Float32Array {
  const out = new Float32Array(w.length);
  for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) out[o * inF + i] = w[o * inF + i] * s[i];
  return out;
}

/**
 * The weight the model computes with once W·diag(s) is quantized and its input divided by s,
 * in the unscaled frame: Q(W·diag(s))·diag(1/s).
 */
export function scaledFakeQuantize(w: Float32Array, outF: number, inF: number, groupSize: number, s: Float32Array): Float32Array {
  const scaled = scaleColumns(w, outF, inF, s);
  const deq = new Float32Array(w.length);
  for (let o = 0; o < outF; o++) for (let g = 0; g < inF; g += groupSize) quantizeGroup(scaled, o * inF + g, groupSize, Infinity, null, deq);
  for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) deq[o * inF + i] /= s[i];
  return deq;
}

/**
 * The clip search on a scaled weight W' = W·diag(s) [out, in] whose inputs are x / s (`stats` of
 * x, `s` the scales; all ones when unscaled): per (row, group), the clamp of |w'| that minimises
 * the group's output error. Returns the clamps [out, groups].
 */
export function searchClip(scaled: Float32Array, outF: number, inF: number, stats: InputStats, s: Float32Array): Float32Array {
  const G = stats.groupSize;
  const groups = inF / G;
  const clip = new Float32Array(outF * groups);
  const deq = new Float32Array(G);
  const d = new Float64Array(G);
  const wg = new Float32Array(G);
  for (let o = 0; o < outF; o++) {
    for (let g = 0; g < groups; g++) {
      const from = o * inF + g * G;
      let maxAbs = 0;
      for (let i = 0; i < G; i++) {
        wg[i] = scaled[from + i];
        maxAbs = Math.max(maxAbs, Math.abs(wg[i]));
      }
      let best = Infinity;
      let bestClip = maxAbs;
      for (const ratio of CLIP_RATIOS) {
        const c = maxAbs * ratio;
        quantizeGroup(wg, 0, G, c, null, deq);
        // Error in x's frame: (w' − q(w')) / s against H of x.
        for (let i = 0; i < G; i++) d[i] = (wg[i] - deq[i]) / s[g * G + i];
        let err = 0;
        for (let i = 0; i < G; i++) {
          if (d[i] === 0) continue;
          let row = 0;
          for (let j = 0; j < G; j++) row += stats.at(g, i, j) * d[j];
          err += d[i] * row;
        }
        if (err < best) {
          best = err;
          bestClip = c;
        }
      }
      clip[o * groups + g] = bestClip;
    }
  }
  return clip;
}
