import { describe, expect, it } from 'vitest';
import { freshRng, randn } from '../testing/random.js';
import { F16_TABLE, f32ToF16 } from '../tensor/half.js';
import { byteSize, dtypeInfo } from '../tensor/dtype.js';
import { BLOCK_FORMATS, blockRowBytes } from './formats.js';
import { dequantize, dequantizeQ4_0, dequantizeQ4_1, dequantizeQ8_0 } from './dequantize.js';
import { quantize, quantizeQ4_0, quantizeQ4_1, quantizeQ8_0 } from './quantize.js';

const d16 = (b: Uint8Array, p: number) => F16_TABLE[b[p] | (b[p + 1] << 8)];
// d is computed in f32 and stored as f16: a stored d differs from the one used to round by up to
// 2^-11 relative, which moves a value by at most |q| * d * 2^-11.
const F16_SLACK = 2 ** -11;

describe('block dtypes', () => {
  it('are registered with llama.cpp sizes', () => {
    expect(Object.fromEntries(Object.keys(BLOCK_FORMATS).map((f) => [f, [dtypeInfo(f).blockSize, dtypeInfo(f).blockBytes]]))).toEqual({
      q8_0: [32, 34], q4_0: [32, 18], q4_1: [32, 20], q4_k: [256, 144], q6_k: [256, 210],
    });
    expect(byteSize('q8_0', 64 * 3)).toBe(34 * 6);
    expect(() => blockRowBytes('q4_0', 40, 'w')).toThrow(/multiple of 32/);
  });
});

describe('quantize -> dequantize', () => {
  for (const scale of [1, 0.02, 300]) {
    it(`q8_0 is within d/2 per element (scale ${scale})`, () => {
      const rng = freshRng();
      const x = randn(32 * 37, rng.normal, scale);
      const q = quantizeQ8_0(x);
      expect(q.length).toBe(37 * 34);
      const y = dequantizeQ8_0(q);
      for (let b = 0; b < 37; b++) {
        const d = d16(q, b * 34);
        for (let j = 0; j < 32; j++) {
          const i = b * 32 + j;
          expect(Math.abs(y[i] - x[i]), `seed ${rng.seed} i ${i}`).toBeLessThanOrEqual(d / 2 + 127 * d * F16_SLACK + 1e-12);
        }
      }
    });

    it(`q4_0 is within d/2, d at the clamped end (scale ${scale})`, () => {
      const rng = freshRng();
      const x = randn(32 * 29, rng.normal, scale);
      const q = quantizeQ4_0(x);
      const y = dequantizeQ4_0(q);
      for (let b = 0; b < 29; b++) {
        const d = Math.abs(d16(q, b * 18));
        for (let j = 0; j < 32; j++) {
          const i = b * 32 + j;
          const err = Math.abs(y[i] - x[i]);
          // x / d in (7.5, 8] is clamped to 15 (7 d): the only place the error can exceed d / 2.
          const bound = Math.abs(x[i] / d16(q, b * 18)) > 7.5 ? d : d / 2;
          expect(err, `seed ${rng.seed} i ${i}`).toBeLessThanOrEqual(bound + 8 * d * F16_SLACK + 1e-12);
        }
      }
    });

    it(`q4_1 is within d/2 + the f16 rounding of m (scale ${scale})`, () => {
      const rng = freshRng();
      const x = randn(32 * 23, rng.normal, scale);
      const q = quantizeQ4_1(x);
      const y = dequantizeQ4_1(q);
      for (let b = 0; b < 23; b++) {
        const d = d16(q, b * 20);
        const m = d16(q, b * 20 + 2);
        let min = Infinity;
        for (let j = 0; j < 32; j++) min = Math.min(min, x[b * 32 + j]);
        for (let j = 0; j < 32; j++) {
          const i = b * 32 + j;
          expect(Math.abs(y[i] - x[i]), `seed ${rng.seed} i ${i}`).toBeLessThanOrEqual(d / 2 + 15 * d * F16_SLACK + Math.abs(m - min) + 1e-6 * scale);
        }
      }
    });
  }

  it('follows llama.cpp rounding on hand-picked blocks', () => {
    // q8_0: amax 127 -> d = 1; 2.5 rounds away from zero to 3, -2.5 to -3.
    const x = new Float32Array(32);
    x.set([127, 2.5, -2.5, 0.49, -126.5]);
    const q = quantizeQ8_0(x);
    expect(d16(q, 0)).toBe(1);
    expect(Array.from(new Int8Array(q.buffer, 2, 5))).toEqual([127, 3, -3, 0, -127]);
    // q4_0: the largest magnitude is -8 -> d = 1 and nibble 0; +8 clamps to 15 (7).
    const y = new Float32Array(32);
    y.set([-8, 8, 0, 3.4, 3.6]);
    const q4 = quantizeQ4_0(y);
    expect(d16(q4, 0)).toBe(1);
    expect(Array.from(dequantizeQ4_0(q4).subarray(0, 5))).toEqual([-8, 7, 0, 3, 4]);
    // Low nibbles hold values 0..15, high nibbles 16..31.
    y.fill(0);
    y[0] = -8;
    y[16] = 4;
    const packed = quantizeQ4_0(y);
    expect(packed[2]).toBe(0 | ((4 + 8) << 4));
    // q4_1: min 0, max 15 -> d = 1, m = 0.
    const z = Float32Array.from({ length: 32 }, (_, i) => i % 16);
    const q41 = quantizeQ4_1(z);
    expect([d16(q41, 0), d16(q41, 2)]).toEqual([1, 0]);
    expect(Array.from(dequantizeQ4_1(q41))).toEqual(Array.from(z));
  });

  it('an all-zero block has d = 0 and decodes to zeros', () => {
    for (const f of ['q8_0', 'q4_0', 'q4_1'] as const) {
      const q = quantize(f, new Float32Array(64));
      expect(dequantize(f, q).every((v) => v === 0)).toBe(true);
    }
  });

  it('rejects sizes that are not whole blocks', () => {
    expect(() => quantizeQ8_0(new Float32Array(33))).toThrow(/whole blocks of 32/);
    expect(() => dequantize('q4_k', new Uint8Array(100))).toThrow(/whole blocks of 144/);
    expect(() => quantize('q6_k', new Float32Array(256))).toThrow(/can only be read/);
  });

  it('decodes q4_k and q6_k as ggml does (hand-built blocks)', () => {
    // q4_k: d = 1, dmin = 0.5; sub-block 0 scale 2 min 1; sub-block 5 scale 33 (needs the high bits) min 7.
    const b = new Uint8Array(144);
    const put16 = (p: number, v: number) => ((b[p] = f32ToF16(v) & 0xff), (b[p + 1] = f32ToF16(v) >> 8));
    put16(0, 1);
    put16(2, 0.5);
    b[4 + 0] = 2; // scale of sub-block 0
    b[4 + 4] = 1; // min of sub-block 0
    // j = 5: scale = (s[9] & 15) | ((s[1] >> 6) << 4), min = (s[9] >> 4) | ((s[5] >> 6) << 4)
    b[4 + 9] = (33 & 15) | ((7 & 15) << 4);
    b[4 + 1] = (33 >> 4) << 6;
    b[4 + 5] = (7 >> 4) << 6;
    b[16] = 0x3a; // value 0: low nibble 10; value 32: high nibble 3
    b[16 + 64] = 0x90; // sub-block 4 (low nibbles of bytes 64..95) value 128: 0; sub-block 5 value 160: 9
    const y = dequantize('q4_k', b);
    expect(y[0]).toBe(2 * 10 - 0.5 * 1);
    expect(y[160]).toBe(33 * 9 - 0.5 * 7);
    // q6_k: d = 0.25 at byte 208; scale[0] = -3; value 0 = (ql[0] & 15 | (qh[0] & 3) << 4) - 32.
    const c = new Uint8Array(210);
    c[208] = f32ToF16(0.25) & 0xff;
    c[209] = f32ToF16(0.25) >> 8;
    c[192] = 0xfd; // -3
    c[0] = 0x05;
    c[128] = 0x02; // high bits 2 -> q = 5 | 32 = 37 -> 5
    expect(dequantize('q6_k', c)[0]).toBe(0.25 * -3 * 5);
  });
});
