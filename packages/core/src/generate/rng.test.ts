import { describe, expect, it } from 'vitest';
import { createRng } from './rng.js';

const draws = (rng: () => number, n: number) => Array.from({ length: n }, rng);

describe('createRng', () => {
  it('gives the same sequence for the same seed and a different one for another seed', () => {
    const seed = Math.floor(Math.random() * 2 ** 32);
    expect(draws(createRng(seed), 100)).toEqual(draws(createRng(seed), 100));
    expect(draws(createRng(seed), 100)).not.toEqual(draws(createRng(seed + 1), 100));
    expect(draws(createRng(0), 10)).not.toEqual(draws(createRng(2 ** 32), 10));
  });

  it('returns numbers in [0, 1) with mean and variance of a uniform', () => {
    const xs = draws(createRng(), 50_000);
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
    // SE of the mean is sqrt(1/12/n) ~ 0.0013.
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.007);
    expect(Math.abs(variance - 1 / 12)).toBeLessThan(0.003);
  });

  it('is random without a seed and rejects non-integer seeds', () => {
    expect(draws(createRng(), 5)).not.toEqual(draws(createRng(), 5));
    expect(() => createRng(1.5)).toThrow(/seed/);
  });
});
