import { createRng } from '@lithe/core';
import { freshRng } from '@lithe/core/testing';
import { describe, expect, it } from 'vitest';
import { chiSquare } from './testing/chi-square.js';
import { verify, type Verification } from './verify.js';

const rng = freshRng();
const V = 7;

function randomDistribution(zeros: number[] = []): Float64Array {
  const p = Float64Array.from({ length: V }, () => rng.uniform() ** 2);
  for (const z of zeros) p[z] = 0;
  const s = p.reduce((a, b) => a + b, 0);
  return p.map((x) => x / s);
}

function drawFrom(w: ArrayLike<number>, u: number): number {
  let total = 0;
  for (let i = 0; i < w.length; i++) total += w[i];
  let r = u * total;
  for (let i = 0; i < w.length; i++) {
    if (w[i] <= 0) continue;
    r -= w[i];
    if (r < 0) return i;
  }
  return w.length - 1;
}

/** The same walk with the correction step wrong (draws from p instead of norm(max(0, p − q))). */
function brokenVerify(v: Verification): number[] {
  const out: number[] = [];
  for (let i = 0; i <= v.drafted.length; i++) {
    const p = v.p(i);
    if (i === v.drafted.length) return [...out, v.draw(p)];
    const d = v.drafted[i];
    const qd = v.q![i][d];
    if (v.random() * qd < p[d]) out.push(d);
    else return [...out, v.draw(p)];
  }
  return out;
}

// Two positions of drafts from q against targets p; the joint of the first two emitted tokens.
const p0 = randomDistribution([6]);
const p1 = randomDistribution();
const q0 = randomDistribution([2]);
const q1 = randomDistribution();
const expected = new Float64Array(V * V);
for (let a = 0; a < V; a++) for (let b = 0; b < V; b++) expected[a * V + b] = p0[a] * p1[b];

/** Emits tokens in steps of two drafts until two are out; position 0 is p0 / q0, later ones p1 / q1. */
function run(n: number, seed: number, impl: (v: Verification) => number[]): Float64Array {
  const u = createRng(seed);
  const P = (pos: number) => (pos === 0 ? p0 : p1);
  const Q = (pos: number) => (pos === 0 ? q0 : q1);
  const counts = new Float64Array(V * V);
  for (let t = 0; t < n; t++) {
    const out: number[] = [];
    while (out.length < 2) {
      const pos = out.length;
      const q = [Q(pos), Q(pos + 1)];
      out.push(
        ...impl({
          drafted: q.map((d) => drawFrom(d, u())),
          q,
          p: (i) => P(pos + i),
          greedy: false,
          random: u,
          draw: (w) => drawFrom(w, u()),
          residual: new Float64Array(V),
        }),
      );
    }
    counts[out[0] * V + out[1]]++;
  }
  return counts;
}

describe(`rejection sampling gives the target's distribution (seed ${rng.seed})`, () => {
  const N = 40_000;
  it('matches p jointly over two positions (chi-square, p = 1e-4)', () => {
    const { statistic, critical } = chiSquare(run(N, rng.seed, (v) => verify(v).tokens), expected);
    expect(statistic).toBeLessThan(critical);
  });

  it('the test fails for a correction step that draws from p instead of the residual', () => {
    const { statistic, critical } = chiSquare(run(N, rng.seed + 1, brokenVerify), expected);
    expect(statistic).toBeGreaterThan(critical);
  });

  it('deterministic drafts (q one-hot) and greedy targets', () => {
    const u = createRng(rng.seed);
    const counts = new Float64Array(V);
    for (let t = 0; t < 20_000; t++) {
      const r = verify({ drafted: [3], q: null, p: () => p0, greedy: false, random: u, draw: (w) => drawFrom(w, u()), residual: new Float64Array(V) });
      counts[r.tokens[0]]++;
    }
    expect(chiSquare(counts, p0).statistic).toBeLessThan(chiSquare(counts, p0).critical);

    const oneHot = (i: number) => Float64Array.from({ length: V }, (_, j) => (j === i ? 1 : 0));
    const never = () => {
      throw new Error('greedy verification must not use randomness');
    };
    const g = (drafted: number[], targets: number[]) =>
      verify({ drafted, q: null, p: (i) => oneHot(targets[i]), greedy: true, random: never, draw: never, residual: new Float64Array(V) });
    expect(g([4, 5, 6], [4, 5, 6, 1])).toEqual({ tokens: [4, 5, 6, 1], accepted: 3 });
    expect(g([4, 5, 6], [4, 2, 6, 1])).toEqual({ tokens: [4, 2], accepted: 1 });
    expect(g([4], [0, 3])).toEqual({ tokens: [0], accepted: 0 });
  });
});
