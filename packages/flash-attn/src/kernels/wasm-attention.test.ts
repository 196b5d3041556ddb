/**
 * The wasm flash kernel against core's CPU reference attention (packages/core, attentionDense) on
 * fresh random inputs: decode rows long enough to split into chunks, prefill blocks with odd row
 * counts and positions across key-block boundaries, GQA ratios 1, 4 and 8, sliding windows, the
 * masked diagonal, f32 and f16 caches, one and two threads.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend, DenseKVCache, WasmBackend, type AttentionParams, type Backend, type KVDType, type Tensor } from '@lithe/core';
import { freshRng, randn } from '@lithe/core/testing';
import { FlashWasm, flashPlan } from './wasm-attention.js';
import { type AttentionCase, caseLabel, denseCall, expectClose } from './attention-cases.js';

const rng = freshRng();
const cpu = new CpuBackend();

const values = (t: Tensor) => Array.from(t.handle as Float32Array);

/** Runs `attend` on a one-layer cache of `dtype` filled with the case's keys and values. */
function run(be: Backend, c: AttentionCase, dtype: KVDType, data: { q: Float32Array; k: Float32Array; v: Float32Array }, attend: (q: Tensor, cache: DenseKVCache, p: AttentionParams, out: Tensor) => void): number[] {
  const { q, cache, params, out } = denseCall(be, c, dtype, data);
  attend(q, cache, params, out);
  return values(out);
}

const CASES: AttentionCase[] = [
  // Decode: one row, short and long enough for split-K chunks, across the 32-key block boundary.
  { T: 1, nHeads: 8, nKV: 8, headDim: 64, startPos: 0 },
  { T: 1, nHeads: 8, nKV: 2, headDim: 64, startPos: 31 },
  { T: 1, nHeads: 8, nKV: 1, headDim: 64, startPos: 32 },
  { T: 1, nHeads: 32, nKV: 4, headDim: 64, startPos: 1500 },
  { T: 1, nHeads: 4, nKV: 4, headDim: 12, startPos: 1027 },
  { T: 1, nHeads: 16, nKV: 2, headDim: 68, startPos: 777, window: 300 },
  { T: 1, nHeads: 8, nKV: 1, headDim: 64, startPos: 900, noDiagonal: true },
  // Prefill: odd row counts, blocks of 32 keys cut by the causal edge, GQA 1 / 4 / 8.
  { T: 5, nHeads: 4, nKV: 4, headDim: 16, startPos: 0 },
  { T: 33, nHeads: 8, nKV: 2, headDim: 64, startPos: 0 },
  { T: 70, nHeads: 8, nKV: 1, headDim: 64, startPos: 45 },
  { T: 37, nHeads: 3, nKV: 3, headDim: 20, startPos: 64 },
  { T: 9, nHeads: 32, nKV: 4, headDim: 64, startPos: 600 },
  { T: 50, nHeads: 8, nKV: 2, headDim: 32, startPos: 20, window: 17 },
  { T: 41, nHeads: 4, nKV: 1, headDim: 64, startPos: 100, window: 64 },
  { T: 29, nHeads: 8, nKV: 8, headDim: 8, startPos: 0, noDiagonal: true },
  { T: 12, nHeads: 8, nKV: 2, headDim: 64, startPos: 33, window: 40, noDiagonal: true },
];

describe.each([1, 2])('wasm flash attention, %i thread(s)', (threads) => {
  let wasm: WasmBackend;
  let flash: FlashWasm;
  beforeAll(async () => {
    // minParallelWork 0: every call goes through the pool, small ones too.
    wasm = await WasmBackend.create({ threads, minParallelWork: 0 });
    flash = await FlashWasm.load(wasm);
  });
  afterAll(() => wasm.close());

  describe.each(['f32', 'f16'] as const)('%s cache', (dtype) => {
    it.each(CASES.map((c) => [caseLabel(c), c] as const))('%s', (_, c) => {
      const kvWidth = c.nKV * c.headDim;
      const n = c.startPos + c.T;
      const data = { q: randn(c.T * c.nHeads * c.headDim, rng.normal, 2), k: randn(n * kvWidth, rng.normal), v: randn(n * kvWidth, rng.normal) };
      const ref = run(cpu, c, dtype, data, (q, cache, p, out) => cpu.kernels.get('cpu', 'attention', 'dense')(q, cache.layer(0), p, out));
      const got = run(wasm, c, dtype, data, (q, cache, p, out) => flash.attention(q, cache.layer(0), p, out));
      expectClose(got, ref, 3e-5, rng.seed);
    });
  });

  it('random shapes, seeded per run', () => {
    for (let n = 0; n < 12; n++) {
      const nKV = 1 + Math.floor(rng.uniform() * 4);
      const group = [1, 2, 4, 8][Math.floor(rng.uniform() * 4)];
      const c: AttentionCase = {
        T: 1 + Math.floor(rng.uniform() * (n % 2 ? 3 : 60)),
        nHeads: nKV * group,
        nKV,
        headDim: 4 * (1 + Math.floor(rng.uniform() * 20)),
        startPos: Math.floor(rng.uniform() * 1200),
        window: rng.uniform() < 0.3 ? 1 + Math.floor(rng.uniform() * 500) : undefined,
        noDiagonal: rng.uniform() < 0.2,
      };
      const dtype = rng.uniform() < 0.5 ? 'f16' : 'f32';
      const kvWidth = c.nKV * c.headDim;
      const total = c.startPos + c.T;
      const data = { q: randn(c.T * c.nHeads * c.headDim, rng.normal, 2), k: randn(total * kvWidth, rng.normal), v: randn(total * kvWidth, rng.normal) };
      const ref = run(cpu, c, dtype, data, (q, cache, p, out) => cpu.kernels.get('cpu', 'attention', 'dense')(q, cache.layer(0), p, out));
      const got = run(wasm, c, dtype, data, (q, cache, p, out) => flash.attention(q, cache.layer(0), p, out));
      expectClose(got, ref, 3e-5, rng.seed);
    }
  });

  it('f16 keys and values in the subnormal range (|x| < 2^-14) decode exactly', () => {
    const c: AttentionCase = { T: 3, nHeads: 8, nKV: 2, headDim: 64, startPos: 300 };
    const n = (c.startPos + c.T) * c.nKV * c.headDim;
    // Values about 2e-5: most halves are subnormal. Queries large enough that the scores matter.
    const data = { q: randn(c.T * c.nHeads * c.headDim, rng.normal, 3e4), k: randn(n, rng.normal, 2e-5), v: randn(n, rng.normal, 2e-5) };
    const ref = run(cpu, c, 'f16', data, (q, cache, p, out) => cpu.kernels.get('cpu', 'attention', 'dense')(q, cache.layer(0), p, out));
    const got = run(wasm, c, 'f16', data, (q, cache, p, out) => flash.attention(q, cache.layer(0), p, out));
    expectClose(got, ref, 2e-10, rng.seed);
  });

  it('runs the build that matches the backend (relaxed SIMD where core runs its relaxed build)', () => {
    expect(flash.simd).toBe(wasm.simd);
  });

  it('refuses a cache that does not hold the queried positions', () => {
    const c: AttentionCase = { T: 4, nHeads: 4, nKV: 2, headDim: 8, startPos: 3 };
    const data = { q: randn(4 * 32, rng.normal), k: randn(7 * 16, rng.normal), v: randn(7 * 16, rng.normal) };
    expect(() => run(wasm, c, 'f32', data, (q, cache, p, out) => flash.attention(q, cache.layer(0), { ...p, startPos: 10 }, out))).toThrow(/cache holds 7 tokens, queries reach 14/);
  });
});

describe('flashPlan', () => {
  const p = (startPos: number, extra: Partial<AttentionParams> = {}): AttentionParams => ({ nHeads: 32, nKVHeads: 4, headDim: 64, scale: 0.125, startPos, ...extra });
  it('splits a long decode row into chunks of whole key blocks that cover every key', () => {
    const plan = flashPlan(1, p(16383), 2);
    expect(plan.nChunks).toBeGreaterThan(1);
    expect(plan.chunkLen % 32).toBe(0);
    expect(plan.nChunks * plan.chunkLen).toBeGreaterThanOrEqual(16384);
    expect((plan.nChunks - 1) * plan.chunkLen).toBeLessThan(16384);
  });
  it('keeps prefill in one chunk with GQA groups sharing each tile', () => {
    const plan = flashPlan(1024, p(3072), 2);
    expect(plan).toMatchObject({ nChunks: 1, qBlock: 4 });
    expect(plan.tiles).toBe(4 * 256);
  });
  it('chunks only the window of a windowed decode row', () => {
    const plan = flashPlan(1, p(100_000, { window: 1024 }), 2);
    expect(plan.nChunks * plan.chunkLen).toBeGreaterThanOrEqual(1024);
    expect(plan.nChunks * plan.chunkLen).toBeLessThan(1024 + 32 * plan.nChunks);
  });
});
