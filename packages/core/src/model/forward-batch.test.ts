/**
 * The batched forward against one forward per sequence, on every backend: ragged batches that mix
 * decode rows, prefill chunks longer than a step, 'all'/'last'/'none' logits and caches at different
 * positions.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../backend/backend.js';
import { CpuBackend } from '../backends/cpu/cpu-backend.js';
import { WasmBackend } from '../backends/wasm/wasm-backend.js';
import { webGpuForTests } from '../backends/webgpu/testing.js';
import type { KVCache } from '../kv-cache/kv-cache.js';
import { createPipeline } from '../pipeline/create-pipeline.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import { freshRng, maxAbsDiff } from '../testing/random.js';
import { tinyModel } from '../testing/tiny-model.js';
import type { BatchSequence } from './llama.js';

const rng = freshRng();
const ids = (n: number) => Int32Array.from({ length: n }, () => 3 + Math.floor(rng.uniform() * 31990));
const VOCAB = 32000;

const gpu = await webGpuForTests();
// The kernels a hardware GPU gets (on a CPU adapter the linears take another shape): the small-row tiles.
const gpuShapes = gpu.backend ? (await webGpuForTests({ cpuAdapter: false })).backend : null;
const wasm = await WasmBackend.create({ threads: 2, minParallelWork: 0 });
const pipelines: Pipeline[] = [];
afterAll(async () => {
  pipelines.forEach((p) => p.dispose());
  await wasm.close();
});

// The cpu kernels compute each row alone: the same bits whatever rows surround it. wasm and WebGPU
// take a matrix-vector path for one row and a multi-row one for several: two f32 summation orders,
// whose difference is bounded like the GPU-vs-CPU comparison of webgpu-model.test.ts (seen: ~1e-6).
const BACKENDS: [string, () => Backend | null, number][] = [
  ['cpu', () => new CpuBackend(), 0],
  ['wasm (2 threads)', () => wasm, 1e-4],
  ['webgpu', () => gpu.backend, 1e-4],
  ['webgpu, GPU kernel shapes', () => gpuShapes, 1e-4],
];

interface Case {
  /** Tokens the sequence's cache already holds. */
  held: number;
  /** New tokens in the batch. */
  fresh: number;
  logits: BatchSequence['logits'];
}

// 1 + 6 + 11 + 2 = 20 rows in steps of 8: the 11-token prefill spans three steps.
const CASES: Case[] = [
  { held: 5, fresh: 1, logits: 'last' },
  { held: 3, fresh: 6, logits: 'all' },
  { held: 0, fresh: 11, logits: 'last' },
  { held: 2, fresh: 2, logits: 'none' },
];

describe(`forwardBatch equals one forward per sequence (seed ${rng.seed})`, () => {
  for (const [name, make, tolerance] of BACKENDS) {
    it.skipIf(name.startsWith('webgpu') && !gpu.backend)(`${name}: ragged decode rows and prefill chunks, then a batched decode step`, async () => {
      const backend = make()!;
      // f32 keys and values: with an f16 cache, a 1e-7 difference between the two summation orders
      // can round a key to the next f16 value, a logit difference of ~1e-3 that says nothing of batching.
      const p = await createPipeline({ model: tinyModel({}, 'F16').files, backend, maxChunk: 8, cacheSize: 64, kvDtype: 'f32' });
      pipelines.push(p);
      const model = p.model;
      const prefix = CASES.map((c) => ids(c.held));
      const fresh = CASES.map((c) => ids(c.fresh));
      const prepare = (): KVCache[] =>
        CASES.map((c, i) => {
          const cache = p.createCache(32);
          if (c.held > 0) model.forward(prefix[i], cache);
          return cache;
        });

      // One forward per sequence, each on its own cache.
      const solo = prepare();
      const expected: Float32Array[] = [];
      for (const [i, c] of CASES.entries()) {
        const out = model.forward(fresh[i], solo[i], { logits: c.logits === 'all' ? 'all' : 'last' });
        if (c.logits !== 'none') expected.push(Float32Array.from((await backend.read(out)) as Float32Array));
      }

      const batched = prepare();
      const out = model.forwardBatch(CASES.map((c, i) => ({ ids: fresh[i], cache: batched[i], logits: c.logits })))!;
      const got = (await backend.read(out)) as Float32Array;
      expect(out.shape).toEqual([1 + 6 + 1, VOCAB]);
      let row = 0;
      for (const e of expected) {
        const n = e.length / VOCAB;
        expect(maxAbsDiff(got.subarray(row * VOCAB, (row + n) * VOCAB), e)).toBeLessThanOrEqual(tolerance);
        row += n;
      }
      expect(batched.map((c) => c.length)).toEqual(CASES.map((c) => c.held + c.fresh));

      // A decode step for every sequence at once reads what the batch wrote into each cache.
      const next = ids(CASES.length);
      const step = (await backend.read(model.forwardBatch(CASES.map((_, i) => ({ ids: next.subarray(i, i + 1), cache: batched[i] })))!)) as Float32Array;
      for (const [i] of CASES.entries()) {
        const alone = (await backend.read(model.forward(next.subarray(i, i + 1), solo[i]))) as Float32Array;
        expect(maxAbsDiff(step.subarray(i * VOCAB, (i + 1) * VOCAB), alone)).toBeLessThanOrEqual(tolerance);
      }
      for (const c of [...solo, ...batched]) c.dispose();
    });
  }

  it('refuses a batch that shares a cache, or a sequence without tokens, before running anything', async () => {
    const p = await createPipeline({ model: tinyModel().files, backend: new CpuBackend(), cacheSize: 16 });
    pipelines.push(p);
    const cache = p.createCache();
    expect(() => p.model.forwardBatch([{ ids: ids(2), cache }, { ids: ids(1), cache }])).toThrow(/share one KV cache/);
    expect(() => p.model.forwardBatch([{ ids: ids(2), cache }, { ids: new Int32Array(0), cache: p.createCache() }])).toThrow(/sequence 1 has no tokens/);
    expect(() => p.model.forwardBatch([])).toThrow(/at least one sequence/);
    expect(cache.length).toBe(0);
    expect(p.model.forwardBatch([{ ids: ids(3), cache, logits: 'none' }])).toBeNull();
    expect(cache.length).toBe(3);
  });
});
