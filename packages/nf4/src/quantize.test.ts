import { describe, expect, it } from 'vitest';
import { DYNAMIC_MAP, halfMaxGap } from './codebooks.js';
import { bitsPerParameter, blockAbsmax, codeAt, dequantize4bit, quantize4bit, quantizedBytes } from './quantize.js';
import { freshRng } from '@lithe/core/testing';

const rng = freshRng();
console.log(`quantize.test seed ${rng.seed}`);

const randn = (n: number, scale = 1) => Float32Array.from({ length: n }, () => rng.normal() * scale);

describe('blockwise 4-bit quantization', () => {
  for (const type of ['nf4', 'fp4'] as const) {
    it(`${type}: dequantized values are within half the largest codebook gap times the block absmax`, () => {
      const shape = [37, 96];
      const x = randn(37 * 96, 0.05);
      // A few outliers, as real weights have.
      for (let i = 0; i < 20; i++) x[Math.floor(rng.uniform() * x.length)] *= 10;
      const q = quantize4bit(x, shape, { type, blockSize: 64, doubleQuant: false });
      const y = dequantize4bit(q);
      const bound = halfMaxGap(q.codebook);
      for (let i = 0; i < x.length; i++) {
        const absmax = q.absmax![Math.floor(i / 64)];
        expect(Math.abs(y[i] - x[i])).toBeLessThanOrEqual(bound * absmax * (1 + 1e-6));
      }
      // The block's largest value is exact (code ±1).
      const b0 = x.subarray(0, 64).reduce((m, v) => (Math.abs(v) > Math.abs(m) ? v : m), 0);
      expect(y[x.indexOf(b0)]).toBe(b0);
    });
  }

  it('on normally distributed weights NF4 has a lower error than FP4 (what it was designed for)', () => {
    const x = randn(64 * 1024);
    const mse = (type: 'nf4' | 'fp4') => {
      const y = dequantize4bit(quantize4bit(x, [x.length], { type, doubleQuant: false }));
      return y.reduce((s, v, i) => s + (v - x[i]) ** 2, 0) / x.length;
    };
    expect(mse('nf4')).toBeLessThan(mse('fp4'));
  });

  it('blocks run over the flattened weight: a block may cross rows, the last may be short', () => {
    const x = randn(3 * 100);
    const q = quantize4bit(x, [3, 100], { blockSize: 64, doubleQuant: false });
    expect(q.absmax).toHaveLength(5);
    const max = (a: number, b: number) => x.subarray(a, b).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(q.absmax![1]).toBe(max(64, 128)); // rows 0 and 1
    expect(q.absmax![4]).toBe(max(256, 300)); // 44 values
    expect(q.codes).toHaveLength(150);
  });

  it('an all-zero block dequantizes to zeros', () => {
    const q = quantize4bit(new Float32Array(128), [2, 64]);
    expect(Array.from(dequantize4bit(q)).every((v) => v === 0)).toBe(true);
  });

  it('double quantization: absmax − mean in 8-bit blocks of 256, each value within its step', () => {
    const n = 64 * 700; // 700 absmax values: blocks of 256, 256 and 188
    const x = randn(n, 0.02);
    const plain = quantize4bit(x, [n], { doubleQuant: false });
    const dq = quantize4bit(x, [n], { doubleQuant: true });
    const nested = dq.nested!;
    expect(dq.codes).toEqual(plain.codes); // same 4-bit codes, only the absmax storage differs
    const absmax = plain.absmax!;
    const mean = absmax.reduce((a, b) => a + b, 0) / absmax.length;
    expect(nested.offset).toBeCloseTo(mean, 6);
    expect(nested.scale).toHaveLength(3);
    const decoded = blockAbsmax(dq);
    for (let i = 0; i < absmax.length; i++) {
      const s = nested.scale[Math.floor(i / 256)];
      const u = (absmax[i] - nested.offset) / s;
      // The two map entries around u: the error is at most half their gap, times the block scale.
      let hi = DYNAMIC_MAP.findIndex((v) => v >= u);
      if (hi <= 0) hi = 1;
      const step = (DYNAMIC_MAP[hi] - DYNAMIC_MAP[hi - 1]) / 2;
      expect(Math.abs(decoded[i] - absmax[i])).toBeLessThanOrEqual(step * s + 1e-6 * absmax[i]);
    }
    // And the whole weight stays within the codebook bound plus the absmax error.
    const y = dequantize4bit(dq);
    const bound = halfMaxGap(dq.codebook);
    for (let i = 0; i < n; i++) {
      const b = Math.floor(i / 64);
      expect(Math.abs(y[i] - x[i])).toBeLessThanOrEqual(bound * absmax[b] + Math.abs(decoded[b] - absmax[b]) + 1e-7);
    }
  });

  it('bits per parameter: 4.127 with double quantization, 4.5 without (block 64)', () => {
    expect(bitsPerParameter({ blockSize: 64, doubleQuant: true })).toBeCloseTo(4 + 8 / 64 + 32 / (64 * 256), 12);
    expect(bitsPerParameter({ blockSize: 64, doubleQuant: true })).toBeCloseTo(4.127, 3);
    expect(bitsPerParameter({ blockSize: 64, doubleQuant: false })).toBe(4.5);
    const n = 256 * 1024;
    const x = randn(n);
    expect((quantizedBytes(quantize4bit(x, [256, 1024])) * 8) / n).toBeCloseTo(4.127, 3);
    expect((quantizedBytes(quantize4bit(x, [256, 1024], { doubleQuant: false })) * 8) / n).toBe(4.5);
  });

  it('packs element 2j in the high nibble of byte j', () => {
    const q = quantize4bit([1, -1, 1, -1], [4], { blockSize: 4, doubleQuant: false });
    expect(Array.from(q.codes)).toEqual([0xf0, 0xf0]);
    expect([0, 1, 2, 3].map((i) => codeAt(q.codes, i))).toEqual([15, 0, 15, 0]);
  });

  it('rejects an odd or non-integer block size', () => {
    expect(() => quantize4bit([1, 2, 3], [3], { blockSize: 3 })).toThrow(/even integer/);
  });
});
