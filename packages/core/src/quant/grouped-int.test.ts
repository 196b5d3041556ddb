import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../backends/cpu/cpu-backend.js';
import { GroupedIntLinear } from '../model/grouped-int-linear.js';
import { f16ToF32, f32ToF16 } from '../tensor/half.js';
import { freshRng, randn } from '../testing/random.js';
import { dequantizeGroupedInt, groupCount, groupedCode, packGroupedCodes, permutationFromGroupIndex, wordsPerRow, type GroupedIntBits, type GroupedIntData } from './grouped-int.js';

type Rng = ReturnType<typeof freshRng>;

/** Random codes, scales, zeros (and a random permutation); W built from them directly, not through the packer. */
function randomWeight(rng: Rng, bits: GroupedIntBits, outF: number, inF: number, groupSize: number, permuted: boolean) {
  const groups = groupCount(inF, groupSize);
  const maxq = 2 ** bits - 1;
  const codes = Array.from({ length: outF * inF }, () => Math.floor(rng.uniform() * (maxq + 1)));
  const scales = Uint16Array.from({ length: outF * groups }, () => f32ToF16(0.01 + 0.05 * rng.uniform()));
  const zeros = Uint8Array.from({ length: outF * groups }, () => Math.floor(rng.uniform() * (maxq + 1)));
  let perm: Int32Array | null = null;
  if (permuted) {
    perm = Int32Array.from({ length: inF }, (_, i) => i);
    for (let i = inF - 1; i > 0; i--) {
      const j = Math.floor(rng.uniform() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
  }
  const w = new Float64Array(outF * inF);
  for (let o = 0; o < outF; o++) {
    for (let j = 0; j < inF; j++) {
      const k = o * groups + Math.floor(j / groupSize);
      w[o * inF + (perm ? perm[j] : j)] = f16ToF32(scales[k]) * (codes[o * inF + j] - zeros[k]);
    }
  }
  const data: GroupedIntData = { bits, outFeatures: outF, inFeatures: inF, groupSize, codes: packGroupedCodes(codes, outF, inF, bits), scales, zeros, perm };
  return { data, codes, w };
}

const seed = freshRng().seed;

describe(`grouped int weights (seed ${seed})`, () => {
  it('packs and unpacks codes of every width, rows that end mid-word included', () => {
    const rng = freshRng(seed);
    for (const bits of [2, 3, 4, 8] as const) {
      for (const [outF, inF] of [[3, 37], [5, 64], [2, 11]]) {
        const { data, codes } = randomWeight(rng, bits, outF, inF, inF, false);
        const wpr = wordsPerRow(inF, bits);
        for (let o = 0; o < outF; o++) for (let j = 0; j < inF; j++) expect(groupedCode(data.codes, wpr, bits, o, j)).toBe(codes[o * inF + j]);
      }
    }
  });

  it('dequantizes to scale · (code − zero) in input order', () => {
    const rng = freshRng(seed + 1);
    const { data, w } = randomWeight(rng, 3, 7, 45, 16, true);
    const got = dequantizeGroupedInt(data);
    for (let i = 0; i < w.length; i++) expect(got[i]).toBeCloseTo(w[i], 6);
  });

  it('turns an act-order g_idx into the permutation that sorts columns by group', () => {
    const gIdx = Int32Array.from([1, 0, 2, 0, 1, 2, 1, 0]);
    // groups of 3 (the last of 2): group 2 holds two columns.
    expect(() => permutationFromGroupIndex(gIdx, 3)).not.toThrow();
    expect(Array.from(permutationFromGroupIndex(gIdx, 3)!)).toEqual([1, 3, 7, 0, 4, 6, 2, 5]);
    expect(permutationFromGroupIndex(Int32Array.from([0, 0, 1, 1]), 2)).toBeNull();
    expect(() => permutationFromGroupIndex(Int32Array.from([0, 0, 0, 1]), 2)).toThrow(/group 0 has 3 columns, expected 2/);
    expect(() => permutationFromGroupIndex(Int32Array.from([0, 5]), 2)).toThrow(/entry 1 is group 5/);
  });

  it('rejects arrays that do not fit the shape, with the reason', () => {
    const rng = freshRng(seed + 2);
    const { data } = randomWeight(rng, 4, 4, 32, 8, false);
    const backend = new CpuBackend();
    expect(() => GroupedIntLinear.fromData('l', backend, { ...data, scales: data.scales.subarray(1) })).toThrow(/scales has 15 entries, expected 16/);
    expect(() => GroupedIntLinear.fromData('l', backend, { ...data, bits: 5 as GroupedIntBits })).toThrow(/bits must be one of 2, 3, 4, 8/);
    expect(() => GroupedIntLinear.fromData('l', backend, { ...data, zeros: data.zeros.map(() => 16) })).toThrow(/zero point 16 does not fit 4 bits/);
  });

  describe('cpu kernel vs an f64 product of the directly built matrix', () => {
    const backend = new CpuBackend();
    const cases: [GroupedIntBits, number, number, number][] = [
      [4, 13, 64, 32], [4, 5, 96, 96], [4, 3, 40, 16], [4, 7, 37, 37], [4, 6, 50, 8],
      [8, 9, 48, 16], [3, 11, 45, 32], [2, 5, 70, 64], [3, 4, 33, 33],
    ];
    for (const [bits, outF, inF, G] of cases) {
      for (const permuted of [false, true]) {
        for (const T of [1, 2, 5]) {
          it(`${bits} bits, [${outF}, ${inF}], group ${G}${permuted ? ', permuted' : ''}, ${T} rows`, () => {
            const rng = freshRng(seed + bits * 1000 + outF * 10 + T);
            const { data, w } = randomWeight(rng, bits, outF, inF, G, permuted);
            const bias = randn(outF, rng.normal);
            const x = randn(T * inF, rng.normal);
            const lin = GroupedIntLinear.fromData('l', backend, data, backend.upload(new Uint8Array(bias.buffer), [outF], 'f32', 'weights'));
            const xt = backend.upload(new Uint8Array(x.buffer), [T, inF], 'f32', 'activations');
            const out = backend.allocate([T, outF], 'f32', 'activations');
            lin.forward(xt, out);
            const ys = out.handle as Float32Array;
            for (let t = 0; t < T; t++) {
              for (let o = 0; o < outF; o++) {
                let ref = bias[o], mag = Math.abs(bias[o]);
                for (let i = 0; i < inF; i++) {
                  ref += x[t * inF + i] * w[o * inF + i];
                  mag += Math.abs(x[t * inF + i] * w[o * inF + i]);
                }
                expect(Math.abs(ys[t * outF + o] - ref)).toBeLessThanOrEqual(3e-6 * mag + 1e-7);
              }
            }
            expect(lin.bytes).toBe(data.codes.byteLength + data.scales.byteLength + data.zeros.byteLength + (data.perm?.byteLength ?? 0) + 4 * outF);
            lin.dispose();
          });
        }
      }
    }
  });
});
