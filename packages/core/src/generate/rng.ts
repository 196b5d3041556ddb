/**
 * Small seeded PRNG for sampling: xoshiro128** (128-bit state, period 2^128 - 1), seeded through
 * splitmix32 so that nearby seeds (0, 1, 2, ...) give unrelated streams.
 */

/** A source of uniform numbers in [0, 1). */
export type Rng = () => number;

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

function randomSeed(): number {
  const c = (globalThis as { crypto?: { getRandomValues?: (a: Uint32Array) => Uint32Array } }).crypto;
  if (c?.getRandomValues) return c.getRandomValues(new Uint32Array(1))[0];
  return Math.floor(Math.random() * 0x100000000);
}

/**
 * Creates a PRNG returning numbers in [0, 1) with 32 bits of resolution. The same integer seed
 * always gives the same sequence; without a seed one is drawn from `crypto.getRandomValues`
 * (or `Math.random` where that is missing).
 */
export function createRng(seed?: number): Rng {
  if (seed !== undefined && !Number.isSafeInteger(seed)) {
    throw new RangeError(`seed must be a safe integer, got ${seed}`);
  }
  const s = seed ?? randomSeed();
  // Fold the high bits in too, so seeds that differ only above bit 31 still differ.
  const hi = Math.floor(s / 0x100000000) >>> 0;
  const init = splitmix32((s >>> 0) ^ Math.imul(hi, 0x27d4eb2d));
  let a = init();
  let b = init();
  let c = init();
  let d = init();
  if ((a | b | c | d) === 0) a = 1; // the all-zero state is a fixed point
  return () => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result / 0x100000000;
  };
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
