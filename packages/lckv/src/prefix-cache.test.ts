/**
 * Prefix caching over the condensed cache: a prompt that extends a cached one reuses its prefix and
 * gives the logits and tokens of a full prefill (sequential prompts: exact; f32 keys and values).
 */
import { fileURLToPath } from 'node:url';
import { createPipeline, type Pipeline } from '@lithe/core';
import { maxAbsDiff } from '@lithe/core/testing';
import { afterAll, expect, it } from 'vitest';
import { lckv } from './lckv.js';

const fixtures = fileURLToPath(new URL('../../../tooling/fixtures/', import.meta.url));
const open: Pipeline[] = [];
afterAll(() => open.forEach((p) => p.dispose()));

const load = async () => {
  const p = await createPipeline({ model: `${fixtures}models/tiny-brown-lckv`, backend: 'cpu', cacheSize: 256, kvDtype: 'f32', plugins: [lckv({ prefill: 'sequential' })] });
  open.push(p);
  return p;
};

it('an LCKV model reuses a cached prefix: same logits and tokens as without', async () => {
  const [p, ref] = [await load(), await load()];
  ref.caches.prefixCaching = false;
  const system = 'The jury said that the city of Atlanta had been praised for the manner in which the election was conducted.';
  await p.generate(system, { temperature: 0, maxTokens: 4 }).result;
  const prompt = `${system} The grand jury commented on a number of other topics`;
  const seen: Float32Array[][] = [[], []];
  const run = (q: Pipeline, out: Float32Array[]) => q.generate(prompt, { temperature: 0, maxTokens: 8, stopOnEos: false, logitsProcessors: [(l) => void out.push(l.slice())] }).result;
  const [reused, full] = [await run(p, seen[0]), await run(ref, seen[1])];
  expect(reused.cachedPromptTokens).toBe(p.encode(system).length);
  expect(reused.tokenIds).toEqual(full.tokenIds);
  seen[0].forEach((row, i) => expect(maxAbsDiff(row, seen[1][i])).toBeLessThan(1e-4));
});

it("an LCKV model copies a running generation's prefix (its dense cache of KV layers only): same logits and tokens as without", async () => {
  const [p, ref] = [await load(), await load()];
  ref.caches.prefixCaching = false;
  const system = 'The jury said that the city of Atlanta had been praised for the manner in which the election was conducted.';
  const [first, second] = [`${system} It said`, `${system} The grand jury commented on a number of other topics`];
  const seen: Float32Array[][] = [[], []];
  const opts = { temperature: 0, maxTokens: 6, stopOnEos: false };
  let late: Promise<{ cachedPromptTokens: number; tokenIds: number[] }> | null = null;
  // The second starts while the first decodes: the shared sentence is only in the first's cache.
  for await (const ev of p.generate(first, { temperature: 0, maxTokens: 10, stopOnEos: false })) {
    if (ev.index === 1) late = p.generate(second, { ...opts, logitsProcessors: [(l) => void seen[0].push(l.slice())] }).result;
  }
  const got = await late!;
  const full = await ref.generate(second, { ...opts, logitsProcessors: [(l) => void seen[1].push(l.slice())] }).result;
  expect(got.cachedPromptTokens).toBeGreaterThanOrEqual(p.encode(system).length - 1);
  expect(got.tokenIds).toEqual(full.tokenIds);
  seen[0].forEach((row, i) => expect(maxAbsDiff(row, seen[1][i])).toBeLessThan(1e-4));
});
