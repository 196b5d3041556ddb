/**
 * Prefix caching: a prompt that starts with tokens an idle cache holds prefills only the rest, and
 * gives the same logits and tokens as a full prefill (f32 KV so the comparison can be tight); the
 * pool keeps at most `maxCaches`, reusing and evicting least recently used first.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../backends/cpu/cpu-backend.js';
import { freshRng } from '../testing/random.js';
import { MISTRAL_CHAT_TEMPLATE, tinyModel } from '../testing/tiny-model.js';
import { createPipeline } from './create-pipeline.js';
import type { Pipeline } from './pipeline.js';

const rng = freshRng();
const tiny = tinyModel({}, 'F32', rng.seed, { neverEos: true, chatTemplate: MISTRAL_CHAT_TEMPLATE });
const pipelines: Pipeline[] = [];
afterAll(() => pipelines.forEach((p) => p.dispose()));

async function pipeline(maxChunk?: number, backend: 'cpu' | 'wasm' = 'cpu', kvDtype: 'f32' | 'f16' = 'f32'): Promise<Pipeline> {
  const p = await createPipeline({ model: tiny.files, backend: backend === 'cpu' ? new CpuBackend() : 'wasm', threads: 2, cacheSize: 200, kvDtype, maxChunk });
  pipelines.push(p);
  return p;
}

/** Prompt-token ids drawn from this run's seed (odd lengths, never the special ids 0-2). */
function ids(n: number): number[] {
  return Array.from({ length: n }, () => 3 + Math.floor(rng.uniform() * 250));
}

/** The logits a processor sees at each sampled position, copied. */
function recordLogits(out: Float32Array[]) {
  return (logits: Float32Array) => void out.push(logits.slice());
}

describe(`prefix caching (seed ${rng.seed})`, () => {
  it('a prompt extending a cached one reuses its prefix: same logits and tokens as a full prefill', async () => {
    const p = await pipeline();
    const ref = await pipeline();
    ref.caches.prefixCaching = false;
    const system = [1, ...ids(37)];
    const first = await p.generate(system.concat(ids(5)), { temperature: 0, maxTokens: 6 }).result;
    expect(first.cachedPromptTokens).toBe(0);

    const prompt = system.concat(ids(23));
    const opts = { temperature: 0.8, seed: 17, maxTokens: 9, stopOnEos: false };
    const seen: Float32Array[] = [];
    const reused = await p.generate(prompt, { ...opts, logitsProcessors: [recordLogits(seen)] }).result;
    const want: Float32Array[] = [];
    const full = await ref.generate(prompt, { ...opts, logitsProcessors: [recordLogits(want)] }).result;
    expect(reused.cachedPromptTokens).toBe(system.length);
    expect(full.cachedPromptTokens).toBe(0);
    expect(reused.tokenIds).toEqual(full.tokenIds);
    expect(seen.length).toBe(want.length);
    let worst = 0;
    seen.forEach((row, i) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - want[i][j])))));
    expect(worst).toBeLessThan(1e-4);
  });

  it('the same prompt again reuses all of it but its last token; the completion is the same', async () => {
    const p = await pipeline();
    const prompt = [1, ...ids(41)];
    const a = await p.generate(prompt, { temperature: 0, maxTokens: 8 }).result;
    const b = await p.generate(prompt, { temperature: 0, maxTokens: 8 }).result;
    expect(b.cachedPromptTokens).toBe(prompt.length - 1);
    expect(b.tokenIds).toEqual(a.tokenIds);
  });

  it('pipeline.chat: the next turn reuses the previous turn (prompt and reply) and answers as without it', async () => {
    const p = await pipeline(16); // chunked prefill of the new part too
    const ref = await pipeline(16);
    ref.caches.prefixCaching = false;
    const turn1 = [{ role: 'user' as const, content: 'Tell me about the jury and the county.' }];
    const r1 = await p.chat(turn1, { temperature: 0, maxTokens: 12 }).result;
    const turn2 = [...turn1, { role: 'assistant' as const, content: r1.text }, { role: 'user' as const, content: 'And then what happened?' }];
    const r2 = await p.chat(turn2, { temperature: 0, maxTokens: 10 }).result;
    const base = await ref.chat(turn2, { temperature: 0, maxTokens: 10 }).result;
    // At least the whole first prompt is reused (the reply's text may tokenize differently again).
    expect(r2.cachedPromptTokens).toBeGreaterThanOrEqual(p.encodeChat(turn1).length);
    expect(r2.tokenIds).toEqual(base.tokenIds);
  });

  it('holds at most maxCaches; a prompt sharing nothing takes a new cache while there is room, then the least recently used', async () => {
    const p = await pipeline();
    p.caches.maxCaches = 2;
    const [x, y, z] = [[1, ...ids(30)], [1, ...ids(30)], [1, ...ids(30)]];
    await p.generate(x, { temperature: 0, maxTokens: 2 }).result;
    await p.generate(y, { temperature: 0, maxTokens: 2 }).result;
    expect(p.caches.size).toBe(2);
    expect((await p.generate(x.concat(ids(3)), { temperature: 0, maxTokens: 2 }).result).cachedPromptTokens).toBe(x.length);
    // z shares nothing: it takes the least recently used cache (y's), so x's prefix survives.
    await p.generate(z, { temperature: 0, maxTokens: 2 }).result;
    expect(p.caches.size).toBe(2);
    expect((await p.generate(x.concat(ids(4)), { temperature: 0, maxTokens: 1 }).result).cachedPromptTokens).toBe(x.length);
    expect((await p.generate(y.concat(ids(4)), { temperature: 0, maxTokens: 1 }).result).cachedPromptTokens).toBe(0);
    expect(p.caches.bytes).toBe(2 * p.cacheBytes);
  });

  it('concurrent generations sharing a prefix: one takes the cached cache, the other gets a copy of the prefix; both are right', async () => {
    const p = await pipeline();
    const ref = await pipeline();
    ref.caches.prefixCaching = false;
    const system = [1, ...ids(29)];
    await p.generate(system.concat(ids(3)), { temperature: 0, maxTokens: 3 }).result;
    const prompts = [system.concat(ids(7)), system.concat(ids(11))];
    const opts = { temperature: 1, seed: 5, maxTokens: 7, stopOnEos: false };
    const got = await Promise.all(prompts.map((q) => p.generate(q, opts).result));
    const want = await Promise.all(prompts.map((q) => ref.generate(q, opts).result));
    expect(got.map((r) => r.cachedPromptTokens)).toEqual([system.length, system.length]);
    expect(got.map((r) => r.tokenIds)).toEqual(want.map((r) => r.tokenIds));
  });

  it.each([
    ['cpu', 'f32'],
    ['wasm', 'f16'],
  ] as const)("%s, %s KV: a prompt sharing a running generation's prefix starts from a copy of it (copyPrefix); same logits as a full prefill", async (backend, kvDtype) => {
    const p = await pipeline(16, backend, kvDtype);
    const ref = await pipeline(16, backend, kvDtype);
    ref.caches.prefixCaching = false;
    const system = [1, ...ids(45)];
    const [first, second] = [system.concat(ids(6)), system.concat(ids(9))];
    const opts = { temperature: 0.7, seed: 21, maxTokens: 6, stopOnEos: false };
    const seen: Float32Array[] = [];
    const want: Float32Array[] = [];
    let late: Promise<{ cachedPromptTokens: number; tokenIds: number[] }> | null = null;
    // The second starts while the first is decoding: its system prompt is in the first's cache only.
    for await (const ev of p.generate(first, { temperature: 0, maxTokens: 12, stopOnEos: false })) {
      if (ev.index === 1) late = p.generate(second, { ...opts, logitsProcessors: [recordLogits(seen)] }).result;
    }
    const got = await late!;
    const full = await ref.generate(second, { ...opts, logitsProcessors: [recordLogits(want)] }).result;
    expect(got.cachedPromptTokens).toBe(system.length);
    expect(got.tokenIds).toEqual(full.tokenIds);
    let worst = 0;
    seen.forEach((row, i) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - want[i][j])))));
    expect(worst).toBeLessThan(1e-4);
  });
});
