import { describe, expect, it } from 'vitest';
import { DYNAMIC_MAP, FP4_CODEBOOK, NF4_CODEBOOK, quantizeFP4, quantizeNF4, quantizeToMap } from './codebooks.js';
import { quantize4bit } from './quantize.js';
import { freshRng } from '@lithe/core/testing';

const rng = freshRng();
console.log(`codebooks.test seed ${rng.seed}`);

// Published values (QLoRA appendix / bitsandbytes get_4bit_type('nf4')), code i = i-th entry.
const NF4 = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];
// bitsandbytes' FP4 dequantization tree: bit 3 is the sign, bits 0-2 these magnitudes.
const FP4_MAGNITUDE = [0, 5.208333333e-3, 0.66666667, 1.0, 0.33333333, 0.5, 0.16666667, 0.25];

/** Nearest published value by brute force (x strictly above a midpoint goes up, as bitsandbytes' trees do). */
function nearestNF4(x: number): number {
  let best = 0;
  for (let c = 1; c < 16; c++) if (x > Math.fround((NF4[c - 1] + NF4[c]) / 2)) best = c;
  return best;
}
function nearestFP4(x: number): number {
  const m = Math.abs(x);
  let best = 0;
  for (let c = 1; c < 8; c++) {
    const d = Math.abs(FP4_MAGNITUDE[c] - m);
    const db = Math.abs(FP4_MAGNITUDE[best] - m);
    if (d < db || (d === db && FP4_MAGNITUDE[c] < FP4_MAGNITUDE[best])) best = c;
  }
  return best | (x < 0 ? 8 : 0);
}

describe('codebooks', () => {
  it('NF4 is the published NormalFloat codebook', () => {
    expect(Array.from(NF4_CODEBOOK)).toEqual(NF4.map(Math.fround));
  });

  it("FP4 is bitsandbytes' codebook: sign bit 3, magnitudes [0, 0.0625, 8, 12, 4, 6, 2, 3] / 12", () => {
    for (let c = 0; c < 16; c++) {
      const expected = (c & 8 ? -1 : 1) * FP4_MAGNITUDE[c & 7];
      expect(FP4_CODEBOOK[c]).toBeCloseTo(expected, 7);
    }
  });

  it('hand-checked vectors get the codes bitsandbytes gives (absmax 2)', () => {
    // Normalized: [1, -1, 0, 0.05, 0.5, -0.25, 0.3, -0.65]. NF4: 1->15, -1->0, 0->7, 0.05->8 (0.0796 is nearer
    // than 0), 0.5->12 (below the 0.5017 midpoint), -0.25->4, 0.3->11, -0.65->1.
    const x = [2, -2, 0, 0.1, 1.0, -0.5, 0.6, -1.3];
    const nf4 = quantize4bit(x, [8], { type: 'nf4', blockSize: 8, doubleQuant: false });
    expect(Array.from(nf4.absmax!)).toEqual([2]);
    expect(Array.from(nf4.codes)).toEqual([0xf0, 0x78, 0xc4, 0xb1]);
    // FP4: 1->0b0011, -1->0b1011, 0->0, 0.05->0b0001 (0.0052 < x < 0.0859), 0.5->0b0101, -0.25->0b1111,
    // 0.3->0b0100 (0.2917 < x < 0.4167), -0.65->0b1010.
    const fp4 = quantize4bit(x, [8], { type: 'fp4', blockSize: 8, doubleQuant: false });
    expect(Array.from(fp4.codes)).toEqual([0x3b, 0x01, 0x5f, 0x4a]);
  });

  it('random values get the nearest codebook entry', () => {
    for (let i = 0; i < 20000; i++) {
      const x = Math.fround(rng.uniform() * 2 - 1);
      expect(quantizeNF4(x)).toBe(nearestNF4(x));
      expect(quantizeFP4(x)).toBe(nearestFP4(x));
    }
    expect(quantizeFP4(-1e-6)).toBe(8); // a tiny negative is -0, as in bitsandbytes
  });

  it("the dynamic map is bitsandbytes' create_dynamic_map(signed=True)", () => {
    // Definition: for i = 0..6, the 2^i midpoints of linspace(0.1, 1, 2^i + 1), times 10^(i-6), both signs; then 0 and 1.
    const expected: number[] = [0, 1];
    for (let i = 0; i < 7; i++) {
      const n = 2 ** i;
      for (let k = 0; k < n; k++) {
        const lo = 0.1 + (0.9 * k) / n;
        const hi = 0.1 + (0.9 * (k + 1)) / n;
        const v = ((lo + hi) / 2) * 10 ** (i - 6);
        expected.push(v, -v);
      }
    }
    expected.sort((a, b) => a - b);
    expect(DYNAMIC_MAP).toHaveLength(256);
    for (let i = 0; i < 256; i++) expect(Math.abs(DYNAMIC_MAP[i] - expected[i])).toBeLessThanOrEqual(1e-6 * Math.abs(expected[i]));
    expect(DYNAMIC_MAP[0]).toBeCloseTo(-0.99296875, 7);
    expect(DYNAMIC_MAP[255]).toBe(1);
  });

  it('8-bit quantization picks the nearest map entry', () => {
    for (let i = 0; i < 5000; i++) {
      const x = rng.uniform() * 2 - 1;
      const c = quantizeToMap(DYNAMIC_MAP, x);
      let best = 0;
      for (let k = 1; k < 256; k++) if (Math.abs(DYNAMIC_MAP[k] - x) < Math.abs(DYNAMIC_MAP[best] - x)) best = k;
      expect(Math.abs(DYNAMIC_MAP[c] - x)).toBe(Math.abs(DYNAMIC_MAP[best] - x));
    }
  });
});
