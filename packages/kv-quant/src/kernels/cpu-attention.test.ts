import { CpuBackend, DenseKVCache, type AttentionParams, type Tensor } from '@lithe/core';
import { describe, expect, it } from 'vitest';
import { freshRng, randn } from '@lithe/core/testing';
import { kvQuantFormat } from '../format.js';
import { QuantizedKVCache } from '../quantized-kv-cache.js';
import { dequantizeRow, rowScale } from '../quantize.js';
import { attentionQuantized } from './cpu-attention.js';

const rng = freshRng();
const backend = new CpuBackend();
const attentionDense = backend.kernels.get('cpu', 'attention', 'dense');
const FORMATS = [8, 4].flatMap((bits) => (['asymmetric', 'symmetric'] as const).map((mode) => kvQuantFormat({ bits: bits as 8 | 4, mode })));
const [nHeads, nKVHeads, D, S] = [8, 2, 64, 40];
const W = nKVHeads * D;
const f32 = (data: Float32Array, shape: number[]): Tensor => backend.upload(new Uint8Array(data.buffer.slice(0)), shape, 'f32', 'other');

/** Random keys/values with a different spread per token (outliers are the quantizer tests' business). */
function kvData(): Float32Array {
  const x = randn(S * W, rng.normal);
  for (let t = 0; t < S; t++) {
    const s = 0.5 + rng.uniform();
    for (let i = 0; i < W; i++) x[t * W + i] *= s;
  }
  return x;
}

const CASES: { name: string; rows: number; startPos: number; window?: number; noDiagonal?: boolean }[] = [
  { name: 'prefill of the whole cache', rows: S, startPos: 0 },
  { name: 'decode of the last token', rows: 1, startPos: S - 1 },
  { name: 'a chunk after a prefix', rows: 5, startPos: 17 },
  { name: 'sliding window of 6', rows: 9, startPos: S - 9, window: 6 },
  // LCKV's masked diagonal: earlier positions only; the first row attends to nothing (zeros).
  { name: 'prefill with a masked diagonal', rows: S, startPos: 0, noDiagonal: true },
  { name: 'decode past the cache, masked diagonal, window of 5', rows: 1, startPos: S, window: 5, noDiagonal: true },
];

describe(`attentionQuantized (seed ${rng.seed})`, () => {
  for (const format of FORMATS) {
    describe(format.kind, () => {
      const k = kvData();
      const v = kvData();
      const quant = new QuantizedKVCache({ backend, nLayers: 1, nKVHeads, headDim: D, capacity: S }, format);
      quant.write(0, f32(k, [S, W]), f32(v, [S, W]));
      quant.commit(S);
      const layer = quant.layer(0);

      // The same values after the round trip, and each row's half step.
      const dequant = (codes: Tensor, params: Tensor) => {
        const out = new Float32Array(S * W);
        const half = new Float32Array(S * nKVHeads);
        for (let r = 0; r < S * nKVHeads; r++) {
          const po = r * format.paramsPerHead;
          dequantizeRow(format, codes.handle as Uint8Array, (r * D * format.bits) / 8, params.handle as Uint16Array, po, D, out, r * D);
          half[r] = rowScale(params.handle as Uint16Array, po) / 2;
        }
        return { out, half };
      };
      const kd = dequant(layer.keyCodes, layer.keyParams);
      const vd = dequant(layer.valueCodes, layer.valueParams);
      const denseOf = (kk: Float32Array, vv: Float32Array) => {
        const c = new DenseKVCache({ backend, nLayers: 1, nKVHeads, headDim: D, capacity: S, dtype: 'f32' });
        c.write(0, f32(kk, [S, W]), f32(vv, [S, W]));
        c.commit(S);
        return c.layer(0);
      };
      const exact = denseOf(k, v);
      const roundTripped = denseOf(kd.out, vd.out);

      for (const c of CASES) {
        it(c.name, () => {
          const q = randn(c.rows * nHeads * D, rng.normal);
          const p: AttentionParams = { nHeads, nKVHeads, headDim: D, scale: 1 / Math.sqrt(D), startPos: c.startPos, window: c.window, noDiagonal: c.noDiagonal };
          const run = (kernel: typeof attentionDense, cache: typeof layer | typeof exact) => {
            const out = backend.allocate([c.rows, nHeads * D], 'f32', 'other');
            kernel(f32(q, [c.rows, nHeads * D]), cache, p, out);
            return out.handle as Float32Array;
          };
          const got = run(attentionQuantized, layer);
          const onDequantized = run(attentionDense, roundTripped);
          const reference = run(attentionDense, exact);

          for (let t = 0; t < c.rows; t++) {
            const last = c.startPos + t - (c.noDiagonal ? 1 : 0);
            const first = c.window ? Math.max(0, c.startPos + t - c.window + 1) : 0;
            if (last < first) {
              for (let i = t * nHeads * D; i < (t + 1) * nHeads * D; i++) expect(got[i]).toBe(0);
              continue;
            }
            for (let h = 0; h < nHeads; h++) {
              const g = Math.floor(h / (nHeads / nKVHeads));
              const qo = (t * nHeads + h) * D;
              // Each score moves by at most E = scale * sum|q| * (half key step). The softmax weights then
              // move by a total variation of at most 1 - e^{-2E}, so output dim d moves by at most that
              // times the range of v[., d], plus half a value step.
              let qAbs = 0;
              for (let d = 0; d < D; d++) qAbs += Math.abs(q[qo + d]);
              let kHalf = 0, vHalf = 0;
              const vLo = new Float32Array(D).fill(Infinity), vHi = new Float32Array(D).fill(-Infinity);
              for (let j = first; j <= last; j++) {
                kHalf = Math.max(kHalf, kd.half[j * nKVHeads + g]);
                vHalf = Math.max(vHalf, vd.half[j * nKVHeads + g]);
                for (let d = 0; d < D; d++) {
                  const x = v[j * W + g * D + d];
                  vLo[d] = Math.min(vLo[d], x);
                  vHi[d] = Math.max(vHi[d], x);
                }
              }
              const tv = -Math.expm1(-2 * p.scale * qAbs * kHalf);
              for (let d = 0; d < D; d++) {
                const i = qo + d;
                // Same arithmetic as attention over a dequantized copy, up to f32 rounding.
                expect(Math.abs(got[i] - onDequantized[i])).toBeLessThanOrEqual(1e-4 * (1 + Math.abs(onDequantized[i])));
                const tol = tv * (vHi[d] - vLo[d]) + vHalf + 1e-5;
                if (!(Math.abs(got[i] - reference[i]) <= tol)) throw new Error(`row ${t} head ${h} dim ${d}: ${got[i]} vs ${reference[i]} (tolerance ${tol})`);
              }
            }
          }
        });
      }

      it('refuses a dense layer and a cache shorter than the queries', () => {
        const p: AttentionParams = { nHeads, nKVHeads, headDim: D, scale: 1, startPos: S };
        const q = f32(new Float32Array(nHeads * D), [1, nHeads * D]);
        const out = backend.allocate([1, nHeads * D], 'f32', 'other');
        expect(() => attentionQuantized(q, exact, p, out)).toThrow(/needs a kv-quant cache layer, got kind 'dense'/);
        expect(() => attentionQuantized(q, layer, p, out)).toThrow(/cache holds 40 tokens, queries reach 41/);
      });
    });
  }

  it('prefills a long prompt in O(S) memory: no S x S mask or score matrix is ever allocated', () => {
    const [L, H, KVH, HD] = [2048, 2, 1, 16];
    const format = kvQuantFormat({ bits: 4 });
    const cache = new QuantizedKVCache({ backend, nLayers: 1, nKVHeads: KVH, headDim: HD, capacity: L }, format);
    const kv = f32(randn(L * HD, rng.normal), [L, HD]);
    cache.write(0, kv, kv);
    cache.commit(L);
    const q = f32(randn(L * H * HD, rng.normal), [L, H * HD]);
    const out = backend.allocate([L, H * HD], 'f32', 'other');
    const p: AttentionParams = { nHeads: H, nKVHeads: KVH, headDim: HD, scale: 0.25, startPos: 0 };
    attentionQuantized(f32(new Float32Array(H * HD), [1, H * HD]), cache.layer(0), p, backend.allocate([1, H * HD], 'f32', 'other'));
    const before = process.memoryUsage().arrayBuffers;
    attentionQuantized(q, cache.layer(0), p, out);
    const grown = process.memoryUsage().arrayBuffers - before;
    // An S x S f32 matrix would be 16 MiB; the kernel's scratch is group x S scores and one row.
    expect(grown).toBeLessThan(L * H * 4 * 4);
    expect(Number.isFinite((out.handle as Float32Array)[L * H * HD - 1])).toBe(true);
    cache.dispose();
  });
});
