import { createRng } from '../generate/rng.js';

/**
 * Fresh random inputs for tests: a new seed every run (printed on failure through the returned
 * seed) so tests do not pass only on one lucky draw.
 */
export function freshRng(seed = (Math.random() * 2 ** 31) >>> 0): { seed: number; uniform: () => number; normal: () => number } {
  const uniform = createRng(seed);
  const normal = () => {
    const u = Math.max(uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
  return { seed, uniform, normal };
}

export function randn(n: number, normal: () => number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = normal() * scale;
  return a;
}

/** Largest absolute difference between two arrays of the same length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
