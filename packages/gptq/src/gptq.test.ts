import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { GroupedIntBits } from '@lithe/core';
import { freshRng, randn } from '@lithe/core/testing';
import { dequantizeLinear, gptqQuantize, rtnQuantize } from './gptq.js';
import { HessianAccumulator } from './hessian.js';
import { upperCholeskyOfInverse } from './linalg.js';

const golden = JSON.parse(readFileSync(new URL('../../../tooling/fixtures/gptq/gptq-golden.json', import.meta.url), 'utf8')) as {
  out: number; in: number; rows: number; weight_f32_b64: string; inputs_f32_b64: string;
  cases: { bits: GroupedIntBits; groupSize: number; actOrder: boolean; sym: boolean; codes: string; scales: string; zeros: string; gIdx: string; loss: number }[];
};
const bytes = (b64: string) => {
  const b = Buffer.from(b64, 'base64');
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
};

/** Σ over rows of x of ‖(W − Q)·x‖²: the layer-output error GPTQ minimises. */
function outputError(w: ArrayLike<number>, q: Float64Array, x: Float32Array, outF: number, inF: number): number {
  let e = 0;
  for (let t = 0; t < x.length / inF; t++) {
    for (let r = 0; r < outF; r++) {
      let s = 0;
      for (let c = 0; c < inF; c++) s += (w[r * inF + c] - q[r * inF + c]) * x[t * inF + c];
      e += s * s;
    }
  }
  return e;
}

describe('GPTQ against the PyTorch loop (tooling/fixtures/gptq/make_gptq_fixtures.py)', () => {
  const w = new Float32Array(bytes(golden.weight_f32_b64));
  const x = new Float32Array(bytes(golden.inputs_f32_b64));
  const acc = new HessianAccumulator(golden.in);
  acc.add(x.subarray(0, 100 * golden.in), 100);
  acc.add(x.subarray(100 * golden.in), golden.rows - 100);
  const H = acc.value();
  for (const c of golden.cases) {
    it(`${c.bits} bits, group ${c.groupSize}${c.actOrder ? ', act-order' : ''}${c.sym ? ', sym' : ''}`, () => {
      const q = gptqQuantize(w, golden.out, golden.in, H, { bits: c.bits, groupSize: c.groupSize, actOrder: c.actOrder, sym: c.sym });
      expect(Array.from(q.gIdx)).toEqual(Array.from(new Int32Array(bytes(c.gIdx))));
      expect(Array.from(q.zeros)).toEqual(Array.from(new Uint8Array(bytes(c.zeros))));
      expect(Array.from(q.scales)).toEqual(Array.from(new Float32Array(bytes(c.scales))));
      const codes = new Uint8Array(bytes(c.codes));
      let differ = 0;
      for (let i = 0; i < codes.length; i++) if (codes[i] !== q.codes[i]) differ++;
      expect(differ).toBe(0);
      expect(q.loss).toBeCloseTo(c.loss, 8);
    });
  }

  it('beats round-to-nearest on the layer output error, every case', () => {
    for (const c of golden.cases) {
      const g = gptqQuantize(w, golden.out, golden.in, H, c);
      const r = rtnQuantize(w, golden.out, golden.in, c);
      const eg = outputError(w, dequantizeLinear(g), x, golden.out, golden.in);
      const er = outputError(w, dequantizeLinear(r), x, golden.out, golden.in);
      expect(eg).toBeLessThan(er * 0.8);
    }
  });
});

const seed = freshRng().seed;

describe(`GPTQ pieces (seed ${seed})`, () => {
  it('the upper Cholesky factor U of H⁻¹ satisfies Uᵀ·U·H = I', () => {
    const rng = freshRng(seed);
    const n = 23;
    const a = randn(n * 40, rng.normal);
    const acc = new HessianAccumulator(n);
    acc.add(a, 40);
    const h = acc.value();
    const u = upperCholeskyOfInverse(h, n)!;
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(u[i * n + j]).toBe(0);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) {
          let inv = 0;
          for (let m = 0; m < n; m++) inv += u[m * n + i] * u[m * n + k];
          s += inv * h[k * n + j];
        }
        expect(s).toBeCloseTo(i === j ? 1 : 0, 8);
      }
    }
  });

  it('accumulates H = 2/n·XᵀX', () => {
    const rng = freshRng(seed + 1);
    const x = randn(7 * 5, rng.normal);
    const acc = new HessianAccumulator(5);
    acc.add(x, 7);
    const h = acc.value();
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 5; j++) {
        let s = 0;
        for (let t = 0; t < 7; t++) s += x[t * 5 + i] * x[t * 5 + j];
        expect(h[i * 5 + j]).toBeCloseTo((2 * s) / 7, 10);
      }
    }
  });

  it('round-to-nearest puts every weight within half a step of its value, on odd sizes', () => {
    const rng = freshRng(seed + 2);
    for (const [bits, G, sym] of [[4, 16, false], [3, -1, true], [8, 7, false], [2, 5, true]] as const) {
      const outF = 5, inF = 37;
      const w = randn(outF * inF, rng.normal, 0.1);
      const q = rtnQuantize(w, outF, inF, { bits, groupSize: G, sym });
      const d = dequantizeLinear(q);
      for (let r = 0; r < outF; r++) {
        for (let c = 0; c < inF; c++) {
          const g = q.gIdx[c];
          const s = q.scales[g * outF + r];
          const G1 = G === -1 ? inF : G;
          const groupMin = Math.min(...w.subarray(r * inF + g * G1, r * inF + Math.min(inF, (g + 1) * G1)));
          // Half a step, plus the ends' drift from the f16 rounding of the scale (maxq steps of up
          // to 2⁻¹¹ of a step each). AutoGPTQ's symmetric quantizer, for a group without negative
          // values, keeps min = 0: the top end then sits 2 steps below max.
          const bound = (sym && groupMin >= 0 ? 2 : 0.5) + (2 ** bits - 1) / 2048 + 1e-3;
          expect(Math.abs(d[r * inF + c] - w[r * inF + c])).toBeLessThanOrEqual(s * bound + 1e-7);
        }
      }
    }
  });

  it('explains bad options', () => {
    const w = new Float32Array(8 * 4);
    const h = new Float64Array(16);
    expect(() => gptqQuantize(w, 8, 4, h, { bits: 5 as GroupedIntBits, groupSize: 4 })).toThrow(/bits must be one of 2, 3, 4, 8/);
    expect(() => gptqQuantize(w, 8, 4, h, { bits: 4, groupSize: 0 })).toThrow(/group size must be a positive integer/);
    expect(() => gptqQuantize(w, 8, 4, h, { bits: 4, groupSize: 8 })).toThrow(/group size 8 exceeds the input size 4/);
    expect(() => gptqQuantize(w, 8, 4, new Float64Array(9), { bits: 4, groupSize: 4 })).toThrow(/Hessian of a 4-input layer is 4 × 4/);
  });
});
