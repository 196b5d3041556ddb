import { F16_TABLE, f32ToF16 } from '@lithe/core';
import { describe, expect, it } from 'vitest';
import { freshRng } from '@lithe/core/testing';
import { kvQuantFormat, type KvQuantFormat } from './format.js';
import { dequantizeRow, quantizeRow, rowScale } from './quantize.js';

const rng = freshRng();
const FORMATS = [8, 4].flatMap((bits) => (['asymmetric', 'symmetric'] as const).map((mode) => kvQuantFormat({ bits: bits as 8 | 4, mode })));
const D = 64;

function roundTrip(format: KvQuantFormat, x: Float32Array): { y: Float32Array; scale: number; params: Uint16Array; codes: Uint8Array | Int8Array } {
  const codes = format.bits === 8 && format.mode === 'symmetric' ? new Int8Array(x.length) : new Uint8Array((x.length * format.bits) / 8);
  const params = new Uint16Array(format.paramsPerHead);
  quantizeRow(format, x, 0, x.length, codes, 0, params, 0);
  const y = new Float32Array(x.length);
  dequantizeRow(format, codes, 0, params, 0, x.length, y);
  return { y, scale: rowScale(params, 0), params, codes };
}

/** Largest error allowed: half the stored step, plus f32 rounding of the result. */
function expectWithinHalfStep(x: Float32Array, y: Float32Array, scale: number): void {
  for (let i = 0; i < x.length; i++) {
    const bound = (scale / 2) * (1 + 1e-6) + Math.abs(x[i]) * 2 ** -23;
    if (!(Math.abs(x[i] - y[i]) <= bound)) throw new Error(`element ${i}: ${x[i]} came back as ${y[i]} (step ${scale})`);
  }
}

const normalRow = (sigma = 1) => Float32Array.from({ length: D }, () => rng.normal() * sigma);

describe(`quantizeRow / dequantizeRow (seed ${rng.seed})`, () => {
  for (const f of FORMATS) {
    describe(f.kind, () => {
      it('keeps every element of random rows within half a step, with the step of the stated formula', () => {
        for (let r = 0; r < 300; r++) {
          const x = normalRow(10 ** (rng.uniform() * 4 - 2));
          if (r % 3 === 0) for (let i = 0; i < D; i++) x[i] += 0.5 * (rng.uniform() - 0.5); // some rows off centre
          const { y, scale } = roundTrip(f, x);
          expectWithinHalfStep(x, y, scale);
          let lo = Infinity, hi = -Infinity, absmax = 0;
          for (const v of x) {
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
            absmax = Math.max(absmax, Math.abs(v));
          }
          // The exact step (lmdeploy: (max - min) / (2^b - 1); torchao: absmax / (2^(b-1) - 1)) rounded up to f16.
          const exact = f.mode === 'asymmetric' ? (hi - lo) / f.qmax : absmax / f.qmax;
          expect(scale).toBeGreaterThanOrEqual(exact);
          expect(scale).toBeLessThanOrEqual(exact * (1 + 2 ** -10));
        }
      });

      it('bounds rows with outliers by the outlier-widened step and still recovers the outlier', () => {
        for (let r = 0; r < 50; r++) {
          const x = normalRow();
          const at = Math.floor(rng.uniform() * D);
          x[at] = (rng.uniform() < 0.5 ? -1 : 1) * (20 + 200 * rng.uniform());
          const { y, scale } = roundTrip(f, x);
          expectWithinHalfStep(x, y, scale);
          expect(Math.abs(y[at] - x[at]) / Math.abs(x[at])).toBeLessThanOrEqual(0.5 / f.qmax + 1e-3);
        }
      });

      it('handles constant rows (max = min) without NaN, returning the constant', () => {
        for (const c of [0, 1, -2.5, 0.1, 1234.5678, -1e-3]) {
          const x = new Float32Array(D).fill(c);
          const { y } = roundTrip(f, x);
          for (const v of y) expect(Number.isNaN(v)).toBe(false);
          // f16-representable constants come back exactly; others to f16 precision (asymmetric) or half a step (symmetric).
          const expected = f.mode === 'asymmetric' ? F16_TABLE[f32ToF16(c)] : c;
          const tol = f.mode === 'asymmetric' ? 0 : Math.abs(c) / f.qmax / 2 + Math.abs(c) * 2 ** -10;
          for (const v of y) expect(Math.abs(v - expected)).toBeLessThanOrEqual(tol);
        }
        if (f.mode === 'asymmetric') expect(Array.from(roundTrip(f, new Float32Array(D).fill(3)).y)).toEqual(Array(D).fill(3));
      });

      it('keeps rows far from zero within half a step', () => {
        for (const offset of [1000, -3000, 50]) {
          const x = Float32Array.from({ length: D }, () => offset + 0.01 * rng.normal());
          const { y, scale } = roundTrip(f, x);
          expectWithinHalfStep(x, y, scale);
        }
      });
    });
  }

  it('stores lmdeploy parameters: f16 scale and zero = -min / scale, codes round(x / scale + zero)', () => {
    const f = kvQuantFormat({ bits: 8 });
    const x = Float32Array.from({ length: D }, (_, i) => -1 + (3 * i) / (D - 1)); // min -1, max 2
    const { params, codes, scale } = roundTrip(f, x);
    const zero = F16_TABLE[params[1]];
    expect(scale).toBe(F16_TABLE[f32ToF16(3 / 255)] >= 3 / 255 ? F16_TABLE[f32ToF16(3 / 255)] : F16_TABLE[f32ToF16(3 / 255) + 1]);
    expect(zero).toBeCloseTo(1 / scale, 1);
    expect(codes[0]).toBe(0);
    expect(codes[D - 1]).toBe(255);
    for (let i = 0; i < D; i++) expect(codes[i]).toBe(Math.min(255, Math.max(0, Math.round(x[i] / scale + zero))));
  });

  it('packs int4 two per byte, the even element in the low nibble (signed nibbles when symmetric)', () => {
    const x = new Float32Array(D);
    x[0] = -7;
    x[1] = 7;
    x[2] = 1;
    x[3] = -2;
    const sym = roundTrip(kvQuantFormat({ bits: 4, mode: 'symmetric' }), x);
    expect(rowScale(sym.params, 0)).toBe(1);
    expect(sym.codes[0]).toBe((-7 & 0xf) | (7 << 4));
    expect(sym.codes[1]).toBe(1 | ((-2 & 0xf) << 4));
    expect(Array.from(sym.y.subarray(0, 4))).toEqual([-7, 7, 1, -2]);
    const asym = roundTrip(kvQuantFormat({ bits: 4 }), x);
    expect(asym.codes[0] & 0xf).toBe(0); // the minimum maps to code 0
    expect(asym.codes[0] >> 4).toBe(15); // the maximum to 15
  });
});
