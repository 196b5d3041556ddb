/** Shorthands and error bounds the wasm kernel tests share (imported by *.test.ts only). */
import { expect } from 'vitest';
import type { Backend, TypedArray } from '../../backend/backend.js';
import type { Tensor } from '../../tensor/tensor.js';

export const kernel =
  (b: Backend) =>
  <O extends Parameters<Backend['kernels']['get']>[1]>(op: O, variant?: string) =>
    b.kernels.get(b.name, op, variant);
export const f32 = (b: Backend, data: Float32Array, shape: number[]) => b.upload(new Uint8Array(data.slice().buffer), shape, 'f32', 'other');
export const raw = (b: Backend, bytes: Uint8Array, shape: number[], dtype: string) => b.upload(bytes.slice(), shape, dtype, 'other');
export const out = (b: Backend, shape: number[]) => b.allocate(shape, 'f32', 'other');
export const values = (t: Tensor) => Array.from(t.handle as TypedArray);

/** Per-element |a − b| ≤ bound[i]. */
export function expectWithin(actual: number[], expected: number[], bound: (i: number) => number): void {
  expect(actual.length).toBe(expected.length);
  let worst = -Infinity;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const excess = Math.abs(actual[i] - expected[i]) - bound(i);
    if (!(excess <= worst)) [worst, at] = [excess, i];
  }
  expect(worst, `element ${at}: ${actual[at]} vs ${expected[at]} (bound ${bound(at)})`).toBeLessThanOrEqual(0);
}

/**
 * The bound on element i of out[T, outF] = x[T, inF] · wᵀ when the kernel quantizes x to 8 bits per
 * 32-value block: rounding each activation to a step of amax/127 moves it by at most half a step,
 * so |Σ w·(x − x̂)| ≤ Σ_blocks amax/254 · Σ|w|, plus f32 rounding of the sums.
 */
export function activationRoundingBound(x: Float32Array, w: Float32Array, inF: number, outF: number): (i: number) => number {
  return (i) => {
    const t = Math.floor(i / outF), o = i % outF;
    let s = 0;
    let mag = 0;
    for (let blk = 0; blk < inF / 32; blk++) {
      let amax = 0;
      let wsum = 0;
      for (let j = blk * 32; j < blk * 32 + 32; j++) {
        amax = Math.max(amax, Math.abs(x[t * inF + j]));
        wsum += Math.abs(w[o * inF + j]);
        mag += Math.abs(w[o * inF + j] * x[t * inF + j]);
      }
      s += (amax / 254) * wsum;
    }
    return s * 1.001 + 4e-6 * mag + 1e-6;
  };
}
