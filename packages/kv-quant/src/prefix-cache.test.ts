/**
 * Prefix caching over a quantized cache: a prompt that extends a cached one reuses its quantized
 * prefix (rolled back with truncate) and gives the logits and tokens of a full prefill.
 */
import { createPipeline, type Pipeline } from '@lithe/core';
import { freshRng, maxAbsDiff, tinyModel } from '@lithe/core/testing';
import { afterAll, expect, it } from 'vitest';
import { kvQuant } from './kv-quant.js';

const rng = freshRng(Number(process.env.SEED) || undefined);
const model = tinyModel({ num_attention_heads: 4, num_key_value_heads: 2, hidden_size: 128, intermediate_size: 192 }, 'F32', rng.seed, { neverEos: true });
const open: Pipeline[] = [];
/** Leading tokens two prompts share: the system prompt, or one more when the random suffixes happen to start alike (1 in 250). */
const shared = (a: number[], b: number[]) => {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return i;
};
afterAll(() => open.forEach((p) => p.dispose()));

for (const bits of [8, 4] as const) {
  it(`int${bits} KV: a reused prefix gives the logits and tokens of a full prefill (seed ${rng.seed})`, async () => {
    const load = async () => {
      const p = await createPipeline({ model: model.files, backend: 'cpu', cacheSize: 128, plugins: [kvQuant({ bits })] });
      open.push(p);
      return p;
    };
    const [p, ref] = [await load(), await load()];
    ref.caches.prefixCaching = false;
    const ids = (n: number) => Array.from({ length: n }, () => 3 + Math.floor(rng.uniform() * 250));
    const system = [1, ...ids(33)];
    const before = system.concat(ids(4));
    await p.generate(before, { temperature: 0, maxTokens: 5 }).result;
    const prompt = system.concat(ids(19));
    const seen: Float32Array[][] = [[], []];
    const run = (q: Pipeline, out: Float32Array[]) => q.generate(prompt, { temperature: 0.9, seed: 4, maxTokens: 8, logitsProcessors: [(l) => void out.push(l.slice())] }).result;
    const [reused, full] = [await run(p, seen[0]), await run(ref, seen[1])];
    expect(reused.cachedPromptTokens).toBe(shared(before, prompt));
    expect(reused.tokenIds).toEqual(full.tokenIds);
    seen[0].forEach((row, i) => expect(maxAbsDiff(row, seen[1][i])).toBeLessThan(1e-4));
  });
}

for (const bits of [8, 4] as const) {
  it(`int${bits} KV: a prompt sharing a running generation's prefix starts from a copy of its codes (copyPrefix); same logits as a full prefill (seed ${rng.seed})`, async () => {
    const load = async () => {
      const p = await createPipeline({ model: model.files, backend: 'cpu', cacheSize: 128, plugins: [kvQuant({ bits })] });
      open.push(p);
      return p;
    };
    const [p, ref] = [await load(), await load()];
    ref.caches.prefixCaching = false;
    const ids = (n: number) => Array.from({ length: n }, () => 3 + Math.floor(rng.uniform() * 250));
    const system = [1, ...ids(37)];
    const [first, second] = [system.concat(ids(5)), system.concat(ids(11))];
    const opts = { temperature: 0.8, seed: 9, maxTokens: 6, stopOnEos: false };
    const seen: Float32Array[][] = [[], []];
    let late: Promise<{ cachedPromptTokens: number; tokenIds: number[] }> | null = null;
    // The second starts while the first decodes: the system prompt is only in the first's cache.
    for await (const ev of p.generate(first, { temperature: 0, maxTokens: 10, stopOnEos: false })) {
      if (ev.index === 1) late = p.generate(second, { ...opts, logitsProcessors: [(l) => void seen[0].push(l.slice())] }).result;
    }
    const got = await late!;
    const full = await ref.generate(second, { ...opts, logitsProcessors: [(l) => void seen[1].push(l.slice())] }).result;
    expect(got.cachedPromptTokens).toBe(shared(first, second));
    expect(got.tokenIds).toEqual(full.tokenIds);
    expect(seen[0].length).toBe(opts.maxTokens);
    seen[0].forEach((row, i) => expect(maxAbsDiff(row, seen[1][i])).toBeLessThan(1e-5));
  });
}
