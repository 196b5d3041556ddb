import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createPipeline } from '../pipeline/create-pipeline.js';
import { maxAbsDiff } from '../testing/random.js';

// The trained fixture and the outputs of an independent PyTorch forward (tooling/fixtures/train.py).
const fixtures = fileURLToPath(new URL('../../../../tooling/fixtures/', import.meta.url));
const golden = JSON.parse(readFileSync(`${fixtures}golden/tiny-brown.json`, 'utf8')) as {
  prompts: { text: string; ids: number[]; last_logits_f32_b64: string; all_logits_f32_b64?: string }[];
  greedy: { prompt_index: number; ids: number[] }[];
  perplexity: { file: string; results: { context: number; perplexity: number; tokens_scored: number }[] };
};
const f32 = (b64: string) => new Float32Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer);

// f32 keys and values for the strict comparison; the default f16 cache is checked on greedy tokens.
const pipeline = await createPipeline({ model: `${fixtures}models/tiny-brown`, cacheSize: 512, kvDtype: 'f32' });
const withF16Cache = await createPipeline({ model: `${fixtures}models/tiny-brown`, cacheSize: 512 });
const V = pipeline.config.vocabSize;

describe('the trained fixture against PyTorch', () => {
  it('tokenizes the prompts to the same ids', () => {
    for (const p of golden.prompts) expect(pipeline.encode(p.text)).toEqual(p.ids);
  });

  it('gives the same logits (f32, max abs difference ≤ 1e-3)', async () => {
    for (const p of golden.prompts) {
      const cache = pipeline.createCache(p.ids.length);
      const all = (await pipeline.backend.read(pipeline.model.forward(Int32Array.from(p.ids), cache, { logits: 'all' }))) as Float32Array;
      expect(maxAbsDiff(all.subarray((p.ids.length - 1) * V), f32(p.last_logits_f32_b64))).toBeLessThanOrEqual(1e-3);
      if (p.all_logits_f32_b64) expect(maxAbsDiff(all, f32(p.all_logits_f32_b64))).toBeLessThanOrEqual(1e-3);
      cache.dispose();
    }
  });

  it('continues every prompt greedily with the same tokens, with an f32 and with the default f16 KV cache', async () => {
    for (const p of [pipeline, withF16Cache]) {
      for (const g of golden.greedy) {
        const r = await p.generate(golden.prompts[g.prompt_index].ids, { temperature: 0, maxTokens: g.ids.length, stopOnEos: false }).result;
        expect(r.tokenIds).toEqual(g.ids);
      }
    }
  });

  // About 4,600 tokens at two context lengths through the plain TypeScript kernels.
  it('scores the held-out text to the same perplexity (within 0.1%)', { timeout: 300_000 }, async () => {
    const text = readFileSync(`${fixtures}${golden.perplexity.file}`, 'utf8');
    for (const want of golden.perplexity.results) {
      const got = await pipeline.perplexity(text, { context: want.context });
      expect(got.tokens).toBe(want.tokens_scored);
      expect(Math.abs(got.perplexity / want.perplexity - 1)).toBeLessThan(1e-3);
    }
  });
});
