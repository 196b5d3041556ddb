import { describe, expect, it } from 'vitest';
import { freshRng } from '../testing/random.js';
import {
  Sampler,
  applyRepetitionPenalty,
  argmax,
  minPFilter,
  topKFilter,
  topPFilter,
  validateSamplingOptions,
} from './sampling.js';

const rng = freshRng();

function randomLogits(n: number, scale = 4): Float32Array {
  return Float32Array.from({ length: n }, () => (Math.random() - 0.5) * 2 * scale);
}

function softmax(xs: ArrayLike<number>): number[] {
  const max = Math.max(...Array.from(xs));
  const e = Array.from(xs, (x) => Math.exp(x - max));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

// Counts must be within `z` standard errors of n * p for every token.
function expectFrequencies(counts: number[], probs: number[], n: number, z = 5) {
  probs.forEach((p, i) => {
    const se = Math.sqrt(n * p * (1 - p));
    expect(Math.abs(counts[i] - n * p), `token ${i}: ${counts[i]} vs ${n * p}`).toBeLessThanOrEqual(z * se + 1e-9);
  });
}

describe('validateSamplingOptions', () => {
  it('accepts defaults and edge values', () => {
    expect(() => validateSamplingOptions({})).not.toThrow();
    expect(() =>
      validateSamplingOptions({ temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: 0 }),
    ).not.toThrow();
    expect(() => validateSamplingOptions({ topP: 1e-9, minP: 1 })).not.toThrow();
  });

  it.each([
    [{ temperature: -0.1 }, /temperature must be a finite number >= 0/],
    [{ temperature: Number.NaN }, /temperature/],
    [{ temperature: Infinity }, /temperature/],
    [{ topK: -1 }, /topK must be an integer >= 0/],
    [{ topK: 2.5 }, /topK/],
    [{ topP: 0 }, /topP must be in \(0, 1\]/],
    [{ topP: 1.01 }, /topP/],
    [{ topP: Number.NaN }, /topP/],
    [{ minP: -0.01 }, /minP must be in \[0, 1\]/],
    [{ minP: 1.5 }, /minP/],
    [{ repetitionPenalty: 0 }, /repetitionPenalty must be a finite number > 0/],
    [{ seed: 0.5 }, /seed must be a safe integer/],
  ])('rejects %o', (opts, message) => {
    expect(() => validateSamplingOptions(opts)).toThrow(RangeError);
    expect(() => validateSamplingOptions(opts)).toThrow(message);
    expect(() => new Sampler(opts, 10)).toThrow(message);
  });
});

describe('filters', () => {
  it('topKFilter keeps exactly the k largest (random inputs)', () => {
    for (let trial = 0; trial < 20; trial++) {
      const n = 50 + Math.floor(Math.random() * 2000);
      const logits = randomLogits(n);
      const k = 1 + Math.floor(Math.random() * 60);
      const expected = Array.from(logits.keys())
        .sort((a, b) => logits[b] - logits[a])
        .slice(0, k)
        .sort((a, b) => a - b);
      expect(topKFilter(logits, k)).toEqual(expected);
    }
  });

  it('topKFilter keeps ties at the k-th value and is off for k = 0 or k >= n', () => {
    expect(topKFilter([1, 3, 3, 2], 1)).toEqual([1, 2]);
    expect(topKFilter([1, 3, 3, 2], 2)).toEqual([1, 2]);
    expect(topKFilter([1, 3, 3, 2], 3)).toEqual([1, 2, 3]);
    expect(topKFilter([5, 5, 5, 5, 5], 2)).toEqual([0, 1, 2, 3, 4]);
    expect(topKFilter([1, 2, 3], 0)).toEqual([0, 1, 2]);
    expect(topKFilter([1, 2, 3], 7)).toEqual([0, 1, 2]);
  });

  it('topPFilter keeps the smallest head with cumulative prob >= p, exact at the boundary', () => {
    const probs = [0.125, 0.5, 0.125, 0.25];
    expect(topPFilter(probs, 0.5)).toEqual([1]); // 0.5 reaches 0.5 exactly
    expect(topPFilter(probs, 0.1)).toEqual([1]); // at least one token
    expect(topPFilter(probs, 0.75)).toEqual([1, 3]); // 0.5 + 0.25 hits 0.75 exactly
    expect(topPFilter(probs, 0.76)).toEqual([0, 1, 3]); // tie 0.125/0.125: lower id first
    expect(topPFilter(probs, 0.875)).toEqual([0, 1, 3]);
    expect(topPFilter(probs, 0.9)).toEqual([0, 1, 2, 3]);
    expect(topPFilter(probs, 1)).toEqual([0, 1, 2, 3]);
  });

  it('topPFilter matches a direct computation on random distributions', () => {
    for (let trial = 0; trial < 40; trial++) {
      const n = trial % 2 ? 200 : 3000;
      const probs = softmax(randomLogits(n, trial % 4 < 2 ? 1 : 10));
      const p = 0.05 + Math.random() * 0.9;
      const order = probs.map((_, i) => i).sort((a, b) => probs[b] - probs[a]);
      const kept: number[] = [];
      let cum = 0;
      for (const i of order) {
        kept.push(i);
        cum += probs[i];
        if (cum >= p) break;
      }
      const got = topPFilter(probs, p);
      expect(got).toEqual(kept.sort((a, b) => a - b));
      // Minimal: dropping the smallest kept token falls below p.
      const keptMass = got.reduce((s, i) => s + probs[i], 0);
      const smallest = Math.min(...got.map((i) => probs[i]));
      expect(keptMass).toBeGreaterThanOrEqual(p - 1e-12);
      expect(keptMass - smallest).toBeLessThan(p);
    }
  });

  it('minPFilter keeps probs >= minP * max (equality kept)', () => {
    expect(minPFilter([0.4, 0.2, 0.1, 0.3], 0.5)).toEqual([0, 1, 3]);
    expect(minPFilter([0.4, 0.2, 0.1, 0.3], 1)).toEqual([0]);
    expect(minPFilter([0.4, 0.2, 0.1, 0.3], 0)).toEqual([0, 1, 2, 3]);
    const probs = softmax(randomLogits(500));
    const minP = Math.random() * 0.5;
    const max = Math.max(...probs);
    const expected = probs.flatMap((p, i) => (p >= minP * max ? [i] : []));
    expect(minPFilter(probs, minP)).toEqual(expected);
  });

  it('repetition penalty divides positive and multiplies negative logits, once per token', () => {
    const logits = Float32Array.from([2, -2, 1, 0.5, 0]);
    applyRepetitionPenalty(logits, [0, 1, 1, 0, 4], 2);
    expect(Array.from(logits)).toEqual([1, -4, 1, 0.5, 0]);
    const lenient = Float32Array.from([2, -2]);
    applyRepetitionPenalty(lenient, [0, 1], 0.5);
    expect(Array.from(lenient)).toEqual([4, -1]);
    expect(() => applyRepetitionPenalty(Float32Array.from([1]), [3], 2)).toThrow(/outside the vocabulary/);
  });

  it('argmax returns the first maximum', () => {
    expect(argmax([1, 5, 2, 5])).toBe(1);
    expect(argmax([-3, -1, -1])).toBe(1);
  });
});

describe('Sampler', () => {
  it('temperature 0 is argmax and leaves the input untouched', () => {
    const s = new Sampler({ temperature: 0, topK: 3, topP: 0.5 }, 1000);
    for (let trial = 0; trial < 10; trial++) {
      const logits = randomLogits(1000);
      const copy = logits.slice();
      let best = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
      expect(s.sample(logits)).toBe(best);
      expect(logits).toEqual(copy);
    }
    const tied = new Float32Array(1000);
    tied[3] = tied[7] = 1;
    expect(s.sample(tied)).toBe(3);
  });

  it('applies the repetition penalty before choosing, to positive and negative logits', () => {
    const greedy = new Sampler({ temperature: 0, repetitionPenalty: 2 }, 2);
    expect(greedy.sample(Float32Array.from([3, 2.5]), [])).toBe(0);
    expect(greedy.sample(Float32Array.from([3, 2.5]), [0])).toBe(1); // 3 -> 1.5
    expect(greedy.sample(Float32Array.from([-1, -1.5]), [0, 0])).toBe(1); // -1 -> -2
    expect(greedy.sample(Float32Array.from([-1, -1.5]), [1])).toBe(0);
    // Marks from one call do not leak into the next.
    expect(greedy.sample(Float32Array.from([3, 2.5]), [])).toBe(0);
  });

  it('same seed gives the same draws, another seed different ones', () => {
    const logits = randomLogits(32000, 1);
    const run = (seed: number) => {
      const s = new Sampler({ seed, temperature: 1.2, topP: 0.95 }, 32000);
      return Array.from({ length: 30 }, () => s.sample(logits));
    };
    const seed = Math.floor(Math.random() * 1e9);
    expect(run(seed)).toEqual(run(seed));
    expect(run(seed)).not.toEqual(run(seed + 1));
  });

  it('draw frequencies at temperature 1 match the softmax (20k draws)', () => {
    const logits = randomLogits(8, 1.5);
    const probs = softmax(logits);
    const s = new Sampler({}, 8);
    const n = 20_000;
    const counts = new Array<number>(8).fill(0);
    for (let i = 0; i < n; i++) counts[s.sample(logits)]++;
    expectFrequencies(counts, probs, n);
  });

  it('with temperature, top-k, top-p and min-p: draws stay in the mask, frequencies match', () => {
    const V = 12;
    const logits = randomLogits(V, 2);
    const opts = { temperature: 0.8, topK: 8, topP: 0.9, minP: 0.05 };
    // Independent reference: temperature, top-k, renormalized top-p, then min-p.
    const scaled = Array.from(logits, (l) => l / opts.temperature);
    const byLogit = scaled.map((_, i) => i).sort((a, b) => scaled[b] - scaled[a]);
    let kept = byLogit.slice(0, opts.topK);
    const pK = softmax(kept.map((i) => scaled[i]));
    let cum = 0;
    let m = 0;
    while (m < kept.length && cum < opts.topP) cum += pK[m++];
    kept = kept.slice(0, m);
    const maxP = pK[0];
    kept = kept.filter((_, j) => pK[j] >= opts.minP * maxP);
    const pFinal = softmax(kept.map((i) => scaled[i]));

    const s = new Sampler(opts, V);
    const n = 20_000;
    const counts = new Array<number>(V).fill(0);
    for (let i = 0; i < n; i++) counts[s.sample(logits)]++;
    const expected = new Array<number>(V).fill(0);
    kept.forEach((tok, j) => (expected[tok] = pFinal[j]));
    for (let t = 0; t < V; t++) if (expected[t] === 0) expect(counts[t], `token ${t} is masked`).toBe(0);
    expectFrequencies(counts, expected, n);

    // distribution() is that same distribution, exactly; draw() from it has the same frequencies.
    const dist = new Sampler(opts, V).distribution(logits);
    for (let t = 0; t < V; t++) expect(dist[t]).toBeCloseTo(expected[t], 7); // logits / T is rounded to f32
    const drawn = new Array<number>(V).fill(0);
    for (let i = 0; i < n; i++) drawn[s.draw(dist)]++;
    for (let t = 0; t < V; t++) if (expected[t] === 0) expect(drawn[t]).toBe(0);
    expectFrequencies(drawn, expected, n);
  });

  it('distribution() is one-hot at the argmax when greedy, after the repetition penalty', () => {
    const logits = Float32Array.from([1, 3, 2.9, -1]);
    const s = new Sampler({ temperature: 0, repetitionPenalty: 1.5 }, 4);
    expect(Array.from(s.distribution(logits))).toEqual([0, 1, 0, 0]);
    expect(Array.from(s.distribution(logits, [1]))).toEqual([0, 0, 1, 0]);
    expect(s.sample(logits, [1])).toBe(2);
    expect(() => s.distribution(logits, [], new Float64Array(3))).toThrow(/out has 3 entries, expected vocabSize 4/);
    expect(() => s.draw([0, 0])).toThrow(/no mass/);
    const r = new Sampler({ seed: 3 }, 4);
    const u = Array.from({ length: 1000 }, () => r.random());
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
  });

  it('rejects logits of the wrong length, never picks -Infinity or NaN logits', () => {
    const s = new Sampler({ seed: 1 }, 4);
    expect(() => s.sample(new Float32Array(5))).toThrow(/expected vocabSize 4/);
    const logits = Float32Array.from([-Infinity, Number.NaN, 0, -Infinity]);
    for (let i = 0; i < 100; i++) expect(s.sample(logits)).toBe(2);
    expect(() => s.sample(Float32Array.from([-Infinity, -Infinity, NaN, -Infinity]))).toThrow(/every logit/);
  });

  it('greedy decoding over NaN logits fails clearly instead of returning a token', () => {
    const g = new Sampler({ temperature: 0 }, 4);
    expect(() => g.sample(Float32Array.from([NaN, NaN, NaN, NaN]))).toThrow(/the model produced NaN logits.*checkTensors/);
    expect(() => g.sample(Float32Array.from([1, NaN, 0, 3]))).toThrow(/NaN logits/);
    expect(g.sample(Float32Array.from([1, -Infinity, 0, 3]))).toBe(3);
  });
});

describe(`a seeded draw is stable under rounding-level changes of the logits (seed ${rng.seed})`, () => {
  it('top-k and top-p draws give the same tokens for logits that differ by 1 ulp-scale noise', () => {
    const V = 32000;
    const logits = Float32Array.from({ length: V }, () => rng.normal() * 0.3);
    // What a different summation order (another backend, a batched kernel) changes: ~1e-7.
    const nudged = logits.map((l) => l + (rng.uniform() - 0.5) * 4e-7);
    for (const opts of [{ topK: 40, temperature: 0.7 }, { topP: 0.9 }, { topK: 200, topP: 0.5, temperature: 1.2 }]) {
      const a = new Sampler({ ...opts, seed: 5 }, V);
      const b = new Sampler({ ...opts, seed: 5 }, V);
      const draws = (s: Sampler, l: Float32Array) => Array.from({ length: 50 }, () => s.sample(l));
      expect(draws(b, nudged)).toEqual(draws(a, logits));
    }
  });
});
