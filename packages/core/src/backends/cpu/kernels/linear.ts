import type { Tensor } from '../../../tensor/tensor.js';
import { F16_TABLE } from '../../../tensor/half.js';
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
  const scratch = rowScratch(inF);
  for (let o = 0; o < outF; o++) {
    const w = loadRow(o, scratch);
    const wo = w === scratch ? 0 : o * inF;
    const b = bs ? bs[o] : 0;
    for (let t = 0; t < rows; t++) ys[t * outF + o] = dot(xs, t * inF, w, wo, inF) + b;
  }
}

// One shared row buffer (with a bit view for bf16): kernels run one at a time on a thread.
let scratchF32 = new Float32Array(0);
let scratchU32 = new Uint32Array(0);
function rowScratch(n: number): Float32Array {
  if (scratchF32.length < n) {
    scratchF32 = new Float32Array(n);
    scratchU32 = new Uint32Array(scratchF32.buffer);
  }
  return scratchF32.subarray(0, n);
}

export function linearF32(x: Tensor, weight: Tensor, bias: Tensor | null, out: Tensor): void {
  const w = f32Of(weight);
  linearRows(x, weight, bias, out, () => w);
}

export function linearF16(x: Tensor, weight: Tensor, bias: Tensor | null, out: Tensor): void {
  const w = weight.handle as Uint16Array;
  const inF = weight.shape[1];
  linearRows(x, weight, bias, out, (row, s) => {
    const base = row * inF;
    for (let i = 0; i < inF; i++) s[i] = F16_TABLE[w[base + i]];
    return s;
  });
}

export function linearBF16(x: Tensor, weight: Tensor, bias: Tensor | null, out: Tensor): void {
  const w = weight.handle as Uint16Array;
  const inF = weight.shape[1];
  linearRows(x, weight, bias, out, (row, s) => {
    const base = row * inF;
    for (let i = 0; i < inF; i++) scratchU32[i] = w[base + i] << 16;
    return s;
  });
}
