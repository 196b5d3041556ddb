/**
 * The WebGPU flash kernel against core's CPU reference attention, on Dawn (a software adapter where
 * there is no GPU): split-K decode rows, prefill tiles across block boundaries, GQA 1 / 4 / 8,
 * windows, the masked diagonal, f32 and f16 caches; fresh random inputs per run.
 */
import { describe, expect, it } from 'vitest';
import { CpuBackend, DenseKVCache, type AttentionParams, type Backend, type KVDType, type Tensor } from '@lithe/core';
import { freshRng, randn } from '@lithe/core/testing';
import { attentionFlashWebGpu, webGpuFlashPlan } from './webgpu-attention.js';
import { type AttentionCase, caseLabel, denseCall, webGpuOrSkip } from './attention-cases.js';

const rng = freshRng();
const cpu = new CpuBackend();
const gpu = await webGpuOrSkip();

async function run(be: Backend, c: AttentionCase, dtype: KVDType, data: { q: Float32Array; k: Float32Array; v: Float32Array }, attend: (q: Tensor, cache: DenseKVCache, p: AttentionParams, out: Tensor) => void): Promise<number[]> {
  const { q, cache, params, out } = denseCall(be, c, dtype, data);
  attend(q, cache, params, out);
  const got = Array.from((await be.read(out)) as Float32Array);
  cache.dispose();
  return got;
}

const CASES: AttentionCase[] = [
  { T: 1, nHeads: 8, nKV: 8, headDim: 64, startPos: 0 },
  { T: 1, nHeads: 8, nKV: 1, headDim: 64, startPos: 33 },
  { T: 1, nHeads: 32, nKV: 4, headDim: 64, startPos: 1500 },
  { T: 1, nHeads: 4, nKV: 4, headDim: 12, startPos: 1027 },
  { T: 1, nHeads: 16, nKV: 2, headDim: 68, startPos: 777, window: 300 },
  { T: 1, nHeads: 8, nKV: 1, headDim: 64, startPos: 900, noDiagonal: true },
  { T: 5, nHeads: 4, nKV: 4, headDim: 16, startPos: 0 },
  { T: 33, nHeads: 8, nKV: 2, headDim: 64, startPos: 0 },
  { T: 19, nHeads: 8, nKV: 1, headDim: 128, startPos: 45 },
  { T: 37, nHeads: 3, nKV: 3, headDim: 20, startPos: 64 },
  { T: 50, nHeads: 8, nKV: 2, headDim: 32, startPos: 20, window: 17 },
  { T: 29, nHeads: 8, nKV: 8, headDim: 8, startPos: 0, noDiagonal: true },
  { T: 6, nHeads: 4, nKV: 2, headDim: 256, startPos: 40, window: 40, noDiagonal: true },
];

describe.skipIf(!gpu)(`WebGPU flash attention (seed ${rng.seed})`, () => {
  describe.each(['f32', 'f16'] as const)('%s cache', (dtype) => {
    it.each(CASES.map((c) => [caseLabel(c), c] as const))('%s', { timeout: 60_000 }, async (_, c) => {
      const kvWidth = c.nKV * c.headDim;
      const n = c.startPos + c.T;
      const data = { q: randn(c.T * c.nHeads * c.headDim, rng.normal, 2), k: randn(n * kvWidth, rng.normal), v: randn(n * kvWidth, rng.normal) };
      const ref = await run(cpu, c, dtype, data, (q, cache, p, out) => cpu.kernels.get('cpu', 'attention', 'dense')(q, cache.layer(0), p, out));
      const got = await run(gpu!, c, dtype, data, (q, cache, p, out) => attentionFlashWebGpu(q, cache.layer(0), p, out));
      let worst = 0, at = 0;
      for (let i = 0; i < ref.length; i++) if (!(Math.abs(got[i] - ref[i]) <= worst)) [worst, at] = [Math.abs(got[i] - ref[i]), i];
      expect(worst, `element ${at}: ${got[at]} vs ${ref[at]}`).toBeLessThanOrEqual(3e-5);
    });
  });

  it('splits long decode rows into chunks and keeps the shared tiles in budget', () => {
    const plan = webGpuFlashPlan(1, { nHeads: 32, nKVHeads: 4, headDim: 64, scale: 0.125, startPos: 16383 });
    expect(plan.nChunks).toBeGreaterThan(1);
    expect(plan.nChunks * plan.chunkLen).toBeGreaterThanOrEqual(16384);
    for (const D of [4, 64, 128, 256]) {
      const p = webGpuFlashPlan(100, { nHeads: 8, nKVHeads: 1, headDim: D, scale: 1, startPos: 0 });
      expect(p.M * D).toBeLessThanOrEqual(2048);
      expect(p.BK * D).toBeLessThanOrEqual(2048);
      expect(p.M * p.BK).toBeLessThanOrEqual(1024);
    }
  });
});
