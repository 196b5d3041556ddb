import { describe, expect, it } from 'vitest';
import { freshRng } from '../testing/random.js';
import { byteSize, dtypeInfo, registerDType } from './dtype.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half.js';

const rng = freshRng();

describe(`16-bit floats (seed ${rng.seed})`, () => {
  it('f16 encodes known values exactly', () => {
    expect([1, -2, 0.5, 65504, 6.103515625e-5, 5.960464477539063e-8, 0].map(f32ToF16)).toEqual([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0400, 0x0001, 0]);
    expect(f32ToF16(1e6)).toBe(0x7c00); // overflow to +inf
    expect(Number.isNaN(f16ToF32(f32ToF16(NaN)))).toBe(true);
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // a tie rounds to even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });

  it('f16 and bf16 round trips stay within half an ulp', () => {
    for (let i = 0; i < 10000; i++) {
      const x = Math.fround((rng.uniform() - 0.5) * 2 ** (rng.uniform() * 20 - 10));
      expect(Math.abs(f16ToF32(f32ToF16(x)) - x)).toBeLessThanOrEqual(Math.max(Math.abs(x) * 2 ** -11, 2 ** -25));
      expect(Math.abs(bf16ToF32(f32ToBf16(x)) - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -8);
    }
  });
});

describe('dtypes', () => {
  it('sizes plain and packed types; packed types must fill whole blocks', () => {
    expect(byteSize('bf16', 10)).toBe(20);
    registerDType({ name: 'test_q4', blockSize: 32, blockBytes: 18, float: false });
    expect(dtypeInfo('test_q4').blockBytes).toBe(18);
    expect(byteSize('test_q4', 64)).toBe(36);
    expect(() => byteSize('test_q4', 33)).toThrow(/whole blocks of 32/);
    expect(() => registerDType({ name: 'test_q4', blockSize: 32, blockBytes: 20, float: false })).toThrow(/different layout/);
    expect(() => dtypeInfo('nope')).toThrow(/unknown dtype 'nope'/);
  });
});
