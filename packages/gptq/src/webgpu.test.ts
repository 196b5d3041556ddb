import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPipeline, GroupedIntLinear, WebGpuBackend, type Backend } from '@lithe/core';
import { freshRng, tinyModel } from '@lithe/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { quantizeModelDir } from './node.js';
import { gptq } from './plugin.js';

const rng = freshRng();
// Dawn runs on a software adapter where there is no GPU; where no adapter can be had, skip (CI requires one).
let gpu: WebGpuBackend | null = null;
try {
  gpu = await WebGpuBackend.create();
} catch (e) {
  if (process.env.CI) throw new Error(`WebGPU is required in CI but unavailable: ${(e as Error).message}`);
  console.warn(`skipping WebGPU tests: ${(e as Error).message}`);
}
const root = await mkdtemp(join(tmpdir(), 'lithe-gptq-gpu-'));
afterAll(() => rm(root, { recursive: true, force: true }));

describe.skipIf(!gpu)(`a GPTQ checkpoint on WebGPU (seed ${rng.seed})`, () => {
  it('4 bits, group 32, act-order: the logits of the CPU pipeline', async () => {
    const src = join(root, 'f32');
    tinyModel({}, 'F32', rng.seed).write(src);
    const out = join(root, 'gptq');
    await quantizeModelDir(src, out, { method: 'gptq', bits: 4, groupSize: 32, actOrder: true, calibrationText: 'The jury said the election was conducted well. '.repeat(20), samples: 3, seqLen: 24 });
    const prompt = Int32Array.from([1, 415, 25150, 773, 369]);
    const run = async (backend: Backend | 'cpu') => {
      const p = await createPipeline({ model: out, backend, plugins: [gptq()], cacheSize: 32, kvDtype: 'f32' });
      expect(p.model.layers[0].q).toBeInstanceOf(GroupedIntLinear);
      const cache = p.createCache(16);
      const logits = Float32Array.from((await p.backend.read(p.model.forward(prompt, cache, { logits: 'all' }))) as Float32Array);
      expect(p.backend.memory.snapshot().current.weights).toBe(p.model.weightBytes);
      return logits;
    };
    const [g, c] = [await run(gpu!), await run('cpu')];
    let max = 0;
    for (let i = 0; i < g.length; i++) max = Math.max(max, Math.abs(g[i] - c[i]));
    expect(max).toBeLessThan(1e-3);
  });
});
