import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createPipeline, kvBytesPerToken, WebGpuBackend, type Backend, type Pipeline } from '@lithe/core';
import { maxAbsDiff } from '@lithe/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lckv } from './lckv.js';

// The trained LCKV / CLA fixtures and the outputs of an independent PyTorch forward (tooling/fixtures/train-lckv.py).
const fixtures = fileURLToPath(new URL('../../../tooling/fixtures/', import.meta.url));
interface Golden {
  config: { num_hidden_layers: number };
  prompts: { text: string; ids: number[]; last_logits_f32_b64: string; all_logits_f32_b64?: string; iterative_last_logits_f32_b64: string }[];
  greedy: { prompt_index: number; ids: number[] }[];
  perplexity: { file: string; results: PplResult[]; iterative: PplResult[] };
}
interface PplResult {
  context: number;
  perplexity: number;
  tokens_scored: number;
}
const golden = (name: string) => JSON.parse(readFileSync(`${fixtures}golden/${name}.json`, 'utf8')) as Golden;
const f32 = (b64: string) => new Float32Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer);
const heldOut = readFileSync(`${fixtures}data/brown-heldout.txt`, 'utf8');

// WebGPU runs on Dawn's software adapter where there is no GPU; where no adapter can be had, skip (CI fails).
let gpu: WebGpuBackend | null = null;
try {
  gpu = await WebGpuBackend.create();
} catch (e) {
  if (process.env.CI) throw e;
  console.warn(`skipping WebGPU tests: ${(e as Error).message}`);
}
// Sequential perplexity runs the model once per token, so only wasm scores the held-out text; cpu
// and WebGPU (llvmpipe) are held to the same logits and greedy tokens, which exercise the same kernels.
const BACKENDS: [string, () => Backend | 'cpu' | 'wasm', number[]][] = [
  ['cpu', () => 'cpu', []],
  ['wasm', () => 'wasm', [512, 128]],
  ...(gpu ? [['webgpu', () => gpu!, []] as [string, () => Backend, number[]]] : []),
];
const open: Pipeline[] = [];
afterAll(() => open.forEach((p) => p.dispose()));

async function load(model: string, backend: Backend | 'cpu' | 'wasm', prefill: 'iterative' | 'sequential', maxChunk?: number): Promise<Pipeline> {
  // f32 keys and values: the comparisons with PyTorch are strict (core's tests cover the f16 cache).
  const p = await createPipeline({ model: `${fixtures}models/${model}`, backend, threads: 2, cacheSize: 512, maxChunk, kvDtype: 'f32', plugins: [lckv({ prefill })] });
  open.push(p);
  return p;
}

async function allLogits(p: Pipeline, ids: number[]): Promise<Float32Array> {
  const cache = p.createCache(ids.length);
  const out = (await p.backend.read(p.model.forward(Int32Array.from(ids), cache, { logits: 'all' }))) as Float32Array;
  cache.dispose();
  return out.slice();
}

for (const [model, layers] of [
  ['tiny-brown-lckv', 3],
  ['tiny-brown-cla', 3],
] as const) {
  const g = golden(model);
  for (const [backendName, backend, contexts] of BACKENDS) {
    describe(`${model} on ${backendName}, sequential prompts, against PyTorch`, () => {
      let p: Pipeline;
      beforeAll(async () => {
        p = await load(model, backend(), 'sequential');
      });

      it('caches only the layers that compute keys and values', () => {
        const cache = p.createCache(100);
        expect(cache.nLayers).toBe(layers);
        expect(kvBytesPerToken(p.config) / kvBytesPerToken({ ...p.config, kvLayerMap: null })).toBe(layers / g.config.num_hidden_layers);
        cache.dispose();
      });

      it('gives the same logits (f32, max abs difference ≤ 1e-3)', async () => {
        const V = p.config.vocabSize;
        for (const pr of g.prompts) {
          expect(p.encode(pr.text)).toEqual(pr.ids);
          const all = await allLogits(p, pr.ids);
          expect(maxAbsDiff(all.subarray((pr.ids.length - 1) * V), f32(pr.last_logits_f32_b64))).toBeLessThanOrEqual(1e-3);
          if (pr.all_logits_f32_b64) expect(maxAbsDiff(all, f32(pr.all_logits_f32_b64))).toBeLessThanOrEqual(1e-3);
        }
      });

      it('continues every prompt greedily with the same tokens', async () => {
        for (const gr of g.greedy) {
          const r = await p.generate(g.prompts[gr.prompt_index].ids, { temperature: 0, maxTokens: gr.ids.length, stopOnEos: false }).result;
          expect(r.tokenIds).toEqual(gr.ids);
        }
      });

      if (contexts.length > 0) {
        it(`scores the held-out text to the same perplexity (within 0.1%) at context ${contexts.join(', ')}`, { timeout: 1_200_000 }, async () => {
          for (const want of g.perplexity.results.filter((r) => contexts.includes(r.context))) {
            const got = await p.perplexity(heldOut, { context: want.context });
            expect(got.tokens).toBe(want.tokens_scored);
            expect(Math.abs(got.perplexity / want.perplexity - 1)).toBeLessThan(1e-3);
          }
        });
      }
    });
  }
}

describe('tiny-brown-lckv with the iterative prompt encoding, against the same iterations in PyTorch', () => {
  const g = golden('tiny-brown-lckv');
  for (const [backendName, backend] of BACKENDS) {
    it(`on ${backendName}: last logits ≤ 1e-3${backendName === 'wasm' ? ', perplexity within 0.1%' : ''}`, { timeout: 600_000 }, async () => {
      // One pass over each whole perplexity window, as the reference runs it.
      const p = await load('tiny-brown-lckv', backend(), 'iterative', 512);
      const V = p.config.vocabSize;
      for (const pr of g.prompts) {
        const all = await allLogits(p, pr.ids);
        expect(maxAbsDiff(all.subarray((pr.ids.length - 1) * V), f32(pr.iterative_last_logits_f32_b64))).toBeLessThanOrEqual(1e-3);
      }
      if (backendName !== 'wasm') return;
      for (const want of g.perplexity.iterative) {
        const got = await p.perplexity(heldOut, { context: want.context });
        expect(Math.abs(got.perplexity / want.perplexity - 1)).toBeLessThan(1e-3);
      }
    });
  }
});

it('holds no k/v projections for layers that compute none', async () => {
  const p = await load('tiny-brown-lckv', 'cpu', 'sequential');
  expect(p.model.layers.map((l) => l.k !== null)).toEqual([true, true, false, false, false, true]);
});
