/**
 * Prefix caching and the KV budget with caches other than the dense f16 one: kv-quant's int8/int4
 * caches and an LCKV checkpoint's condensed cache. A repeated long prefix is reused (reported as
 * cached_tokens) with the same greedy text as without; the budget admits as many sessions as the
 * real bytes of each cache allow (lmdeploy's table: more sessions in the same memory).
 */
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createPipeline, kvLayerCount, type Pipeline } from '@lithe/core';
import { kvQuant, kvQuantFormat, quantizedKVBytes } from '@lithe/kv-quant';
import { lckv } from '@lithe/lckv';
import { kvSessions } from './kv-budget.js';
import { CONTEXT, metric, MODEL_ID, startTestServer, testModelDir, type TestServer } from './testing/harness.js';

const LCKV_DIR = fileURLToPath(new URL('../../../tooling/fixtures/models/tiny-brown-lckv', import.meta.url));
const open: Pipeline[] = [];
afterAll(() => open.forEach((p) => p.dispose()));
const load = async (model: string, plugins: Parameters<typeof createPipeline>[0]['plugins'] = []) => {
  const p = await createPipeline({ model, cacheSize: CONTEXT, plugins });
  open.push(p);
  return p;
};

const system = 'You are a careful reader of old newspapers. The jury said that the city of Atlanta had been praised for the manner in which the election was conducted, and that the grand jury commented on a number of other topics. Answer in full sentences.';

/** The same long-prefix request twice, then once more on a server without prefix caching. */
async function repeated(on: TestServer, off: TestServer) {
  const ask = (s: TestServer, q: string) => s.client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'system', content: system }, { role: 'user', content: q }], max_tokens: 8, temperature: 0 });
  await ask(on, 'What did the jury say?');
  const second = await ask(on, 'What about the mayor?');
  const without = await ask(off, 'What about the mayor?');
  return { second, without };
}

describe('prefix caching with other KV caches', () => {
  it.each([
    ['kv-quant int8', () => testModelDir(), () => [kvQuant({ bits: 8 })]],
    ['kv-quant int4', () => testModelDir(), () => [kvQuant({ bits: 4 })]],
    ['an LCKV checkpoint', () => LCKV_DIR, () => [lckv({ prefill: 'sequential' })]],
  ] as const)('%s: a second request with the same long prefix reports cached_tokens and gives the same greedy text', async (_name, dir, plugins) => {
    const on = await startTestServer({ pipeline: await load(dir(), plugins()), parallel: 2 });
    const off = await startTestServer({ pipeline: await load(dir(), plugins()), parallel: 2, prefixCache: false });
    try {
      const { second, without } = await repeated(on, off);
      expect(second.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThan(second.usage!.prompt_tokens / 2);
      expect(without.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
      expect(second.choices[0].message.content).toBe(without.choices[0].message.content);
      expect(await metric(on.url, 'lithe_prompt_tokens_cached_total')).toBe(second.usage!.prompt_tokens_details!.cached_tokens);
    } finally {
      await Promise.all([on.close(), off.close()]);
    }
  });
});

describe('KV budget per cache kind', () => {
  it('admits the sessions the real bytes of each cache allow: f16 < int8 < int4 under one budget', async () => {
    const [f16, int8, int4] = [await load(testModelDir()), await load(testModelDir(), [kvQuant({ bits: 8 })]), await load(testModelDir(), [kvQuant({ bits: 4 })])];
    const c = f16.config;
    const shape = { nLayers: kvLayerCount(c.kvLayerMap ?? null, c.nLayers), nKVHeads: c.nKVHeads, headDim: c.headDim, capacity: CONTEXT };
    // Bytes from the formats' own arithmetic, not from the caches: the pool must hold what they say.
    const want = { f16: 2 * shape.nLayers * CONTEXT * c.nKVHeads * c.headDim * 2, int8: quantizedKVBytes(shape, kvQuantFormat({ bits: 8 })), int4: quantizedKVBytes(shape, kvQuantFormat({ bits: 4 })) };
    expect([f16.cacheBytes, int8.cacheBytes, int4.cacheBytes]).toEqual([want.f16, want.int8, want.int4]);
    const budget = 8 * want.f16;
    const sessions: number[] = [];
    for (const p of [f16, int8, int4]) {
      const s = await startTestServer({ pipeline: p, parallel: 64, kvBudget: budget });
      try {
        sessions.push(await metric(s.url, 'lithe_kv_cache_sessions'));
      } finally {
        await s.close();
      }
    }
    expect(sessions).toEqual([8, Math.floor(budget / want.int8), Math.floor(budget / want.int4)]);
    expect(sessions[1]).toBeGreaterThan(sessions[0]);
    expect(sessions[2]).toBeGreaterThan(sessions[1]);
    // The same arithmetic at a real model's shape (Llama-3-8B: 32 layers, 8 KV heads of 128, 4096 tokens) under 8 GiB.
    const big = { nLayers: 32, nKVHeads: 8, headDim: 128, capacity: 4096 };
    const bigBytes = [2 * 32 * 4096 * 8 * 128 * 2, quantizedKVBytes(big, kvQuantFormat({ bits: 8 })), quantizedKVBytes(big, kvQuantFormat({ bits: 4 }))];
    expect(bigBytes.map((b) => kvSessions(8 * 2 ** 30, b, 4096))).toEqual([16, 31, 60]);
    console.log(`sessions under ${budget} bytes (head_dim ${c.headDim}, ${shape.nLayers} KV layers, ${CONTEXT} tokens): f16 ${sessions[0]}, int8 ${sessions[1]}, int4 ${sessions[2]}`);
  });
});
