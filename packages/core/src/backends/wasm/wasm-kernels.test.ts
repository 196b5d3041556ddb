/**
 * Every wasm kernel against the TypeScript reference kernel of the CPU backend, on fresh random
 * inputs with odd sizes (not multiples of the SIMD width, the 4-block unroll or the thread split),
 * on 1, 2 and 5 rows (the block-quantized linears on 1 to 9: tiles of four rows and remainders),
 * with 1 and 2 threads, on the SIMD128 module and, where the runtime runs it, the relaxed-SIMD one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../backend/backend.js';
import type { AttentionParams } from '../../backend/kernel-signatures.js';
import { DenseKVCache } from '../../kv-cache/dense-kv-cache.js';
import { dequantizeQ4_0, dequantizeQ8_0 } from '../../quant/dequantize.js';
import { quantizeQ4_0, quantizeQ8_0 } from '../../quant/quantize.js';
import { f32ToBf16, f32ToF16 } from '../../tensor/half.js';
import { freshRng, randn } from '../../testing/random.js';
import { CpuBackend } from '../cpu/cpu-backend.js';
import { activationRoundingBound, expectWithin, f32, kernel, out, raw, values } from './kernel-test-helpers.js';
import { relaxedModule, type WasmSimd } from './kernel-modules.js';
import { WasmBackend } from './wasm-backend.js';

const rng = freshRng();
const cpu = new CpuBackend();


const LINEAR_SHAPES: [number, number][] = [
  [37, 5],
  [64, 37],
  [100, 67],
  [259, 19],
];
// Blocks per row: 1, 2, 3, 6, 9, 10 (odd and even counts take different paths).
const QUANT_SHAPES: [number, number][] = [
  [32, 5],
  [64, 37],
  [96, 37],
  [192, 67],
  [288, 19],
  [320, 8],
];

const relaxed = await relaxedModule();
const MODULES: WasmSimd[] = typeof relaxed === 'string' ? ['simd128'] : ['simd128', 'relaxed-simd'];
if (typeof relaxed === 'string') console.log(`wasm kernel tests: SIMD128 module only (${relaxed})`);

describe('kernel module choice', () => {
  it(`'auto' runs ${MODULES.at(-1)} here; 'simd128' can always be asked for`, async () => {
    for (const [choice, expected] of [['auto', MODULES.at(-1)], ['simd128', 'simd128']] as const) {
      const b = await WasmBackend.create({ threads: 1, simd: choice });
      expect(b.simd).toBe(expected);
      await b.close();
    }
    if (MODULES.length === 1) await expect(WasmBackend.create({ threads: 1, simd: 'relaxed-simd' })).rejects.toThrow(/relaxed-simd' is not available/);
  });
});

for (const [threads, simd] of MODULES.flatMap((m) => [1, 2].map((t) => [t, m] as const))) {
  describe(`wasm kernels (${simd}), ${threads} thread(s), against the TypeScript reference (seed ${rng.seed})`, () => {
    let wasm: WasmBackend;
    beforeAll(async () => {
      wasm = await WasmBackend.create({ threads, minParallelWork: 0, simd, relaxedQ8: true });
    });
    afterAll(() => wasm.close());

    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      it.each([1, 2, 5])(`linear ${dtype} on %i rows, odd sizes, with and without bias`, (T) => {
        for (const [inF, outF] of LINEAR_SHAPES) {
          const x = randn(T * inF, rng.normal);
          const w = randn(outF * inF, rng.normal, 0.3);
          const stored = dtype === 'f32' ? new Uint8Array(w.buffer) : new Uint8Array(Uint16Array.from(w, dtype === 'f16' ? f32ToF16 : f32ToBf16).buffer);
          // The wasm backend reads subnormal f16 weights as zero (wasm/common.ts): so does the reference here.
          const flushed = dtype === 'f16' ? new Uint8Array(new Uint16Array(stored.buffer).map((h) => ((h & 0x7c00) === 0 ? 0 : h)).buffer) : stored;
          const bias = randn(outF, rng.normal);
          for (const b of [null, bias]) {
            const run = (be: Backend) => {
              const y = out(be, [T, outF]);
              kernel(be)('linear', dtype)(f32(be, x, [T, inF]), raw(be, be === cpu ? flushed : stored, [outF, inF], dtype), b && f32(be, b, [outF]), y);
              return values(y);
            };
            const ref = run(cpu);
            // f32 sums in a different order: a few ulps of Σ|w·x| (w ≈ its stored value).
            const mag = (i: number) => {
              const t = Math.floor(i / outF), o = i % outF;
              let s = 0;
              for (let j = 0; j < inF; j++) s += Math.abs(w[o * inF + j] * x[t * inF + j]);
              return s * 1.01;
            };
            expectWithin(run(wasm), ref, (i) => 2e-6 * mag(i) + 1e-6);
          }
        }
      });
    }

    for (const dtype of ['q8_0', 'q4_0'] as const) {
      it.each([1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16])(`linear ${dtype} on %i rows (activations quantized to 8 bits per block)`, (T) => {
        for (const [inF, outF] of QUANT_SHAPES) {
          const x = randn(T * inF, rng.normal);
          // Some blocks tiny (their f16 scales subnormal) and some zero: rows with such scales take the
          // kernel's exact scale decoding.
          const values32 = randn(outF * inF, rng.normal, 0.3);
          for (let blk = 0; blk < values32.length / 32; blk++) {
            if (blk % 7 === 3) values32.fill(0, blk * 32, blk * 32 + 32);
            else if (blk % 5 === 2) for (let j = blk * 32; j < blk * 32 + 32; j++) values32[j] *= 1e-4;
          }
          const bytes = (dtype === 'q8_0' ? quantizeQ8_0 : quantizeQ4_0)(values32);
          const w = (dtype === 'q8_0' ? dequantizeQ8_0 : dequantizeQ4_0)(bytes);
          const bias = randn(outF, rng.normal);
          for (const b of [null, bias]) {
            const run = (be: Backend) => {
              const y = out(be, [T, outF]);
              kernel(be)('linear', dtype)(f32(be, x, [T, inF]), raw(be, bytes, [outF, inF], dtype), b && f32(be, b, [outF]), y);
              return values(y);
            };
            const ref = run(cpu);
            expectWithin(run(wasm), ref, activationRoundingBound(x, w, inF, outF));
          }
        }
      });
    }

    it.each([1, 4, 6])('linear q8_0 with quants of −128 (the relaxed kernel cannot negate them) on %i rows', (T) => {
      const [inF, outF] = [96, 7];
      const x = randn(T * inF, rng.normal);
      const bytes = quantizeQ8_0(randn(outF * inF, rng.normal, 0.3));
      // llama.cpp's quantizer writes [-127, 127]; other tools may write −128.
      for (let blk = 0; blk < bytes.length / 34; blk += 2) bytes[blk * 34 + 2 + (blk % 32)] = 0x80;
      const w = dequantizeQ8_0(bytes);
      const run = (be: Backend) => {
        const y = out(be, [T, outF]);
        kernel(be)('linear', 'q8_0')(f32(be, x, [T, inF]), raw(be, bytes, [outF, inF], 'q8_0'), null, y);
        return values(y);
      };
      expectWithin(run(wasm), run(cpu), activationRoundingBound(x, w, inF, outF));
    });

    for (const dtype of ['q8_0', 'q4_0'] as const) {
      const quantize = dtype === 'q8_0' ? quantizeQ8_0 : quantizeQ4_0;
      const dequantize = dtype === 'q8_0' ? dequantizeQ8_0 : dequantizeQ4_0;
      const rowBytes = (dtype === 'q8_0' ? 34 : 18) * 3;

      it(`${dtype} tensors read back in llama.cpp's layout (the backend repacks rows inside)`, async () => {
        const bytes = quantize(randn(7 * 96, rng.normal));
        const t = raw(wasm, bytes, [7, 96], dtype);
        expect(Array.from((await wasm.read(t)) as Uint8Array)).toEqual(Array.from(bytes));
        // Whole rows can be overwritten in place; anything else is refused.
        const row = quantize(randn(96, rng.normal));
        wasm.write(t, row, 2 * rowBytes);
        const expected = bytes.slice();
        expected.set(row, 2 * rowBytes);
        expect(Array.from((await wasm.read(t)) as Uint8Array)).toEqual(Array.from(expected));
        expect(() => wasm.write(t, row.subarray(0, 34), 0)).toThrow(/whole rows/);
        expect(() => wasm.write(t, row, 1)).toThrow(/whole rows/);
        // Views too: rows 2..3 are fine, half a row is not.
        expect(Array.from((await wasm.read(wasm.view(t, [2, 96], 2 * 96))) as Uint8Array)).toEqual(Array.from(expected.subarray(2 * rowBytes, 4 * rowBytes)));
        expect(() => wasm.view(t, [1, 32], 96)).toThrow(/whole rows/);
      });

      it(`embedding from a ${dtype} table decodes the looked-up rows exactly`, () => {
        const [V, D] = [11, 160];
        const bytes = quantize(randn(V * D, rng.normal));
        const table = dequantize(bytes);
        const ids = Int32Array.from([3, 0, 10, 3, 7]);
        const y = out(wasm, [ids.length, D]);
        kernel(wasm)('embedding', dtype)(raw(wasm, bytes, [V, D], dtype), ids, y);
        expect(values(y)).toEqual(Array.from(ids).flatMap((id) => Array.from(table.subarray(id * D, (id + 1) * D))));
        expect(() => kernel(wasm)('embedding', dtype)(raw(wasm, bytes, [V, D], dtype), Int32Array.from([V]), out(wasm, [1, D]))).toThrow(/outside the vocabulary/);
      });
    }

    it.each([
      [1, 6, 2, 16, 0, undefined],
      [2, 6, 3, 10, 7, undefined],
      [5, 4, 4, 12, 3, undefined],
      [5, 8, 2, 20, 11, 6],
      [1, 6, 1, 18, 40, 9],
    ] as const)('attention T=%i heads=%i/%i headDim=%i startPos=%i window=%s', (T, nHeads, nKV, headDim, startPos, window) => {
      const kvWidth = nKV * headDim;
      const capacity = startPos + T + 3;
      const q = randn(T * nHeads * headDim, rng.normal);
      const ks = randn((startPos + T) * kvWidth, rng.normal);
      const vs = randn((startPos + T) * kvWidth, rng.normal);
      const params: AttentionParams = { nHeads, nKVHeads: nKV, headDim, scale: 1 / Math.sqrt(headDim), startPos, window };
      const run = (be: Backend) => {
        const cache = new DenseKVCache({ backend: be, nLayers: 1, nKVHeads: nKV, headDim, capacity });
        if (startPos > 0) {
          cache.write(0, f32(be, ks.subarray(0, startPos * kvWidth), [startPos, kvWidth]), f32(be, vs.subarray(0, startPos * kvWidth), [startPos, kvWidth]));
          cache.commit(startPos);
        }
        cache.write(0, f32(be, ks.subarray(startPos * kvWidth), [T, kvWidth]), f32(be, vs.subarray(startPos * kvWidth), [T, kvWidth]));
        const y = out(be, [T, nHeads * headDim]);
        kernel(be)('attention', 'dense')(f32(be, q, [T, nHeads * headDim]), cache.layer(0), params, y);
        return values(y);
      };
      expectWithin(run(wasm), run(cpu), () => 2e-5);
    });

    it.each([1, 2, 5])('rmsNorm, add and swiglu on %i rows of odd width', (T) => {
      for (const D of [7, 37, 2051]) {
        const x = randn(T * D, rng.normal, 3);
        const y = randn(T * D, rng.normal, 3);
        const g = randn(D, rng.normal);
        const eps = 1e-5;
        for (const op of ['rmsNorm', 'add', 'swiglu'] as const) {
          const run = (be: Backend) => {
            const a = f32(be, x, [T, D]);
            const o = out(be, [T, D]);
            if (op === 'rmsNorm') kernel(be)('rmsNorm')(a, f32(be, g, [D]), eps, o);
            else kernel(be)(op)(a, f32(be, y, [T, D]), o);
            return values(o);
          };
          const ref = run(cpu);
          expectWithin(run(wasm), ref, (i) => 4e-6 * Math.max(1, Math.abs(ref[i])));
        }
      }
    });

    it.each([1, 3, 6])('rope on %i rows (odd head sizes and positions far from 0)', (T) => {
      for (const [nHeads, headDim] of [[3, 10], [2, 64], [5, 18]]) {
        const x = randn(T * nHeads * headDim, rng.normal, 2);
        const positions = Int32Array.from({ length: T }, (_, t) => (t * 977 + 13) % 5000);
        const invFreq = Float32Array.from({ length: headDim / 2 }, (_, i) => Math.pow(10000, (-2 * i) / headDim));
        const run = (be: Backend) => {
          const t = f32(be, x, [T, nHeads * headDim]);
          kernel(be)('rope')(t, nHeads, positions, invFreq);
          return values(t);
        };
        // f32 products and sums where the reference rounds once from f64: a few ulps of |a| + |b|.
        const half = headDim / 2;
        const pairMag = (i: number) => {
          const j = i % headDim, base = i - j, k = j % half;
          return Math.abs(x[base + k]) + Math.abs(x[base + k + half]);
        };
        expectWithin(run(wasm), run(cpu), (i) => 4e-7 * pairMag(i) + 1e-9);
      }
    });

    it.each([1, 4])('softmax and argmax on %i rows of odd width (ties take the first index)', (T) => {
      for (const n of [1, 7, 37, 32001]) {
        const x = randn(T * n, rng.normal, 4);
        // A tie for the largest value in every row: argmax must return the first of the two.
        for (let t = 0; t < T; t++) {
          let m = 0;
          for (let i = 1; i < n; i++) if (x[t * n + i] > x[t * n + m]) m = i;
          if (n > 2) x[t * n + ((m + 1 + t) % n)] = x[t * n + m];
        }
        const run = (be: Backend) => {
          const probs = out(be, [T, n]);
          kernel(be)('softmax')(f32(be, x, [T, n]), probs);
          const ids = be.allocate([T], 'i32', 'other');
          kernel(be)('argmax')(f32(be, x, [T, n]), ids);
          return { probs: values(probs), ids: values(ids) };
        };
        const ref = run(cpu), got = run(wasm);
        expect(got.ids).toEqual(ref.ids);
        // A row holding a NaN: argmax marks it with −1 (the kernel contract), at any position.
        if (n > 1) {
          const bad = x.slice();
          bad[(T - 1) * n + (n * 7) % n + ((T * 13) % n)] = Number.NaN;
          const ids = (be: Backend) => {
            const o = be.allocate([T], 'i32', 'other');
            kernel(be)('argmax')(f32(be, bad, [T, n]), o);
            return values(o);
          };
          expect(ids(wasm)).toEqual(ids(cpu));
          expect(ids(wasm)[T - 1]).toBe(-1);
        }
        expectWithin(got.probs, ref.probs, (i) => 2e-6 * ref.probs[i] + 1e-9);
      }
    });

    it('in-place add and rmsNorm (out is the input)', () => {
      const D = 41;
      const x = randn(2 * D, rng.normal);
      const g = randn(D, rng.normal);
      for (const be of [cpu, wasm] as Backend[]) {
        const a = f32(be, x, [2, D]);
        kernel(be)('add')(a, a, a);
        kernel(be)('rmsNorm')(a, f32(be, g, [D]), 1e-6, a);
      }
      const pick = (be: Backend) => {
        const a = f32(be, x, [2, D]);
        kernel(be)('add')(a, a, a);
        kernel(be)('rmsNorm')(a, f32(be, g, [D]), 1e-6, a);
        return values(a);
      };
      const ref = pick(cpu);
      expectWithin(pick(wasm), ref, (i) => 4e-6 * Math.max(1, Math.abs(ref[i])));
    });
  });
}
