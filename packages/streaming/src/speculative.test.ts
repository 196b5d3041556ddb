import { createPipeline, type Pipeline } from '@lithe/core';
import { speculative, type SpeculativeStats } from '@lithe/speculative';
import { tinyModel } from '@lithe/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { streaming } from './streaming.js';

const seed = (Math.random() * 2 ** 31) >>> 0;
const model = tinyModel({ max_position_embeddings: 64 }, 'F32', seed, { neverEos: true });
const pipelines: Pipeline[] = [];
afterAll(() => pipelines.forEach((p) => p.dispose()));
const open = async (plugins: Parameters<typeof createPipeline>[0]['plugins']) => {
  const p = await createPipeline({ model: model.files, plugins, cacheSize: 64, backend: 'wasm', threads: 1 });
  pipelines.push(p);
  return p;
};

describe(`speculative() on a streaming cache (random model, seed ${seed})`, () => {
  // Another random model drafts (mostly rejected), and a 4-bit copy of the target (mostly kept).
  const other = tinyModel({ max_position_embeddings: 64 }, 'F32', seed + 1, { neverEos: true });
  for (const [name, draft] of [['a different model', other.files], ['self-int4', 'self-int4']] as const) {
    it(`${name} drafting: greedy output is plain streaming's, token for token, far past the window and the model context`, async () => {
      const window = { sinks: 2, window: 10 };
      const [spec, plain] = [await open([speculative({ draft, tokens: 4 }), streaming(window)]), await open([streaming(window)])];
      const prompt = 'The jury said that';
      const [a, b] = [await spec.generate(prompt, { maxTokens: 120, temperature: 0 }).result, await plain.generate(prompt, { maxTokens: 120, temperature: 0 }).result];
      expect(a.completionTokens).toBe(120);
      expect(a.tokenIds).toEqual(b.tokenIds);
      // Every step past the window drafted (the draft's own cache starts again on the latest tokens),
      // and rejected drafts were rolled back.
      const s = a.stats!.speculative as SpeculativeStats;
      expect(s.plainSteps).toBeLessThanOrEqual(1);
      expect(s.drafted).toBeGreaterThan(100);
      expect(s.accepted).toBeLessThan(s.drafted);
    });
  }
});
