import type { Tensor } from '../../../tensor/tensor.js';
import { BF16_TABLE, F16_TABLE } from '../../../tensor/half.js';
import { f32Of } from '../cpu-backend.js';

/** Dot product of a[ao..ao+n) and b[bo..bo+n), four accumulators for instruction-level parallelism. */
export function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, n: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    s0 += a[ao + i] * b[bo + i];
    s1 += a[ao + i + 1] * b[bo + i + 1];
    s2 += a[ao + i + 2] * b[bo + i + 2];
    s3 += a[ao + i + 3] * b[bo + i + 3];
  }
  for (; i < n; i++) s0 += a[ao + i] * b[bo + i];
  return s0 + s1 + s2 + s3;
}

/**
 * out[T, out] = x[T, in] · Wᵀ + b. Each weight row is read once per call and reused for all T rows
 * of x, so prefill streams the weights once, as decode does.
 */
function linearRows(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  out: Tensor,
  loadRow: (row: number, scratch: Float32Array) => Float32Array,
): void {
  const [outF, inF] = weight.shape;
  const rows = x.size / inF;
  const xs = f32Of(x);
  const ys = f32Of(out);
  const bs = bias ? f32Of(bias) : null;
  const row = rowScratch(inF);
  for (let o = 0; o < outF; o++) {
    const w = loadRow(o, row);
    const wo = w === row ? 0 : o * inF;
    const b = bs ? bs[o] : 0;
    let t = 0;
    for (; t + 3 < rows; t += 4) dot4(xs, t * inF, inF, w, wo, ys, t * outF + o, outF, b);
    for (; t < rows; t++) ys[t * outF + o] = dot(xs, t * inF, w, wo, inF) + b;
  }
}

/** Four rows of x against one weight row: each weight value is loaded once for four products. */
function dot4(xs: Float32Array, xo: number, n: number, w: Float32Array, wo: number, ys: Float32Array, yo: number, stride: number, b: number): void {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const x1 = xo + n, x2 = x1 + n, x3 = x2 + n;
  for (let i = 0; i < n; i++) {
    const wi = w[wo + i];
    s0 += xs[xo + i] * wi;
    s1 += xs[x1 + i] * wi;
    s2 += xs[x2 + i] * wi;
    s3 += xs[x3 + i] * wi;
  }
  ys[yo] = s0 + b;
  ys[yo + stride] = s1 + b;
  ys[yo + 2 * stride] = s2 + b;
  ys[yo + 3 * stride] = s3 + b;
}

// One shared row buffer: kernels run one at a time on a thread.
let scratch = new Float32Array(0);
function rowScratch(n: number): Float32Array {
  if (scratch.length < n) scratch = new Float32Array(n);
  return scratch.subarray(0, n);
}

export function linearF32(x: Tensor, weight: Tensor, bias: Tensor | null, out: Tensor): void {
  const w = f32Of(weight);
  linearRows(x, weight, bias, out, () => w);
}

/**
 * 16-bit weights decode through a 65536-entry table. For one or two rows (decode) the lookup is
 * fused into the dot product, one pass over the weights; for more rows (prefill) each weight row is
 * decoded once into f32 and reused for every row of x.
 */
function linearHalf(table: Float32Array) {
  return (x: Tensor, weight: Tensor, bias: Tensor | null, out: Tensor): void => {
    const w = weight.handle as Uint16Array;
    const [outF, inF] = weight.shape;
    const rows = x.size / inF;
    if (rows > 2) {
      linearRows(x, weight, bias, out, (row, s) => {
        const base = row * inF;
        for (let i = 0; i < inF; i++) s[i] = table[w[base + i]];
        return s;
      });
      return;
    }
    const xs = f32Of(x);
    const ys = f32Of(out);
    const bs = bias ? f32Of(bias) : null;
    for (let t = 0; t < rows; t++) {
      const xo = t * inF;
      for (let o = 0; o < outF; o++) {
        const base = o * inF;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        let i = 0;
        for (; i + 3 < inF; i += 4) {
          s0 += xs[xo + i] * table[w[base + i]];
          s1 += xs[xo + i + 1] * table[w[base + i + 1]];
          s2 += xs[xo + i + 2] * table[w[base + i + 2]];
          s3 += xs[xo + i + 3] * table[w[base + i + 3]];
        }
        for (; i < inF; i++) s0 += xs[xo + i] * table[w[base + i]];
        ys[t * outF + o] = s0 + s1 + s2 + s3 + (bs ? bs[o] : 0);
      }
    }
  };
}

export const linearF16 = linearHalf(F16_TABLE);
export const linearBF16 = linearHalf(BF16_TABLE);
