/**
 * Continuous batching, the KV memory budget and prefix caching, through the HTTP API: concurrent
 * requests share batched model steps and each gives what it gives alone; admission stops at the
 * caches the budget holds; a repeated prefix is reused and reported as OpenAI reports it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPipeline, type Pipeline } from '@lithe/core';
import { kvQuant } from '@lithe/kv-quant';
import { createServer } from './server.js';
import { CONTEXT, eventually, loadTestPipeline, metric, MODEL_ID, post, slowDecode, startTestServer, testModelDir, type TestServer } from './testing/harness.js';

let pipeline: Pipeline;
let slow: Pipeline;
beforeAll(async () => {
  pipeline = await loadTestPipeline();
  slow = await loadTestPipeline([slowDecode(15)]);
});
afterAll(() => [pipeline, slow].forEach((p) => p.dispose()));

/** Steps that ran more than one generation, from the lithe_batch_size histogram. */
async function batchedSteps(url: string): Promise<number> {
  const all = await metric(url, 'lithe_batch_size_count');
  const single = await metric(url, 'lithe_batch_size_bucket', ',le="1"');
  return all - single;
}

describe('continuous batching', () => {
  let server: TestServer;
  beforeAll(async () => {
    // Prefix caching off: this compares batched against alone, nothing else.
    server = await startTestServer({ pipeline, parallel: 4, prefixCache: false });
  });
  afterAll(() => server.close());

  const requests = [
    { prompt: 'The jury said that', max_tokens: 14, temperature: 0.9, seed: 7 },
    { prompt: 'Once upon a time there was', max_tokens: 9, temperature: 0 },
    { prompt: 'It was a', max_tokens: 12, temperature: 1.2, top_p: 0.9, seed: 123, logprobs: 2 },
    { prompt: 'Yes', max_tokens: 5, temperature: 0.7, top_k: 20, seed: 5, frequency_penalty: 0.5 },
  ];

  it('concurrent requests run in shared model steps; each gives the text and logprobs it gives alone', async () => {
    const alone = [];
    for (const r of requests) alone.push(await server.client.completions.create({ model: MODEL_ID, ...r }));
    const before = await batchedSteps(server.url);
    const together = await Promise.all(requests.map((r) => server.client.completions.create({ model: MODEL_ID, ...r })));
    expect(together.map((c) => c.choices[0].text)).toEqual(alone.map((c) => c.choices[0].text));
    // Same tokens; the log-probabilities of a batched row round within float error of a lone one.
    const [lp, lpAlone] = [together[2].choices[0].logprobs!, alone[2].choices[0].logprobs!];
    expect(lp.tokens).toEqual(lpAlone.tokens);
    lp.token_logprobs!.forEach((v, i) => expect(v).toBeCloseTo(lpAlone.token_logprobs![i], 4));
    expect(together.map((c) => c.usage!.completion_tokens)).toEqual(requests.map((r) => r.max_tokens));
    expect(await batchedSteps(server.url)).toBeGreaterThan(before);
    // Every step reports its model time and the model's idle gap before it.
    const steps = await metric(server.url, 'lithe_batch_size_count');
    expect(await metric(server.url, 'lithe_batch_step_seconds_count')).toBe(steps);
    expect(await metric(server.url, 'lithe_batch_step_gap_seconds_count')).toBe(steps);
    expect(await metric(server.url, 'lithe_batch_step_seconds_sum')).toBeGreaterThan(0);
    expect(await metric(server.url, 'lithe_batch_step_gap_seconds_sum')).toBeGreaterThanOrEqual(0);
  });

  it('streams that join and leave mid-way keep their own output', async () => {
    const alone = await server.client.completions.create({ model: MODEL_ID, ...requests[0] });
    const long = server.client.completions.create({ model: MODEL_ID, ...requests[0], stream: true });
    let text = '';
    let joined: Promise<unknown> | null = null;
    for await (const c of await long) {
      text += c.choices[0]?.text ?? '';
      // Others join after the first tokens and leave before the end.
      joined ??= Promise.all(requests.slice(1).map((r) => server.client.completions.create({ model: MODEL_ID, ...r })));
    }
    await joined;
    expect(text).toBe(alone.choices[0].text);
  });
});

describe('KV memory budget', () => {
  it('runs at most the generations whose caches fit; the rest wait; /metrics shows the bytes', async () => {
    const cacheBytes = slow.cacheBytes;
    const server = await startTestServer({ pipeline: slow, parallel: 8, kvBudget: Math.floor(2.5 * cacheBytes), prefixCache: false });
    const acs = [new AbortController(), new AbortController(), new AbortController()];
    try {
      expect(await metric(server.url, 'lithe_kv_cache_sessions')).toBe(2);
      expect(await metric(server.url, 'lithe_kv_cache_budget_bytes')).toBe(Math.floor(2.5 * cacheBytes));
      const body = { model: MODEL_ID, messages: [{ role: 'user' as const, content: 'Go on.' }], max_tokens: 200, stream: true as const };
      const streams = acs.map((ac) => server.client.chat.completions.create(body, { signal: ac.signal }).catch(() => null));
      await eventually(async () => (await metric(server.url, 'lithe_num_requests_waiting')) === 1);
      expect(await metric(server.url, 'lithe_num_requests_running')).toBe(2);
      expect(await metric(server.url, 'lithe_kv_cache_bytes_in_use')).toBe(2 * cacheBytes);
      // The waiting one leaves first (so it is never admitted), then the running ones.
      acs[2].abort();
      await eventually(async () => (await metric(server.url, 'lithe_num_requests_waiting')) === 0);
      acs.forEach((ac) => ac.abort());
      await Promise.all(streams);
      await eventually(async () => (await metric(server.url, 'lithe_num_requests_running')) === 0);
      expect(await metric(server.url, 'lithe_kv_cache_bytes_in_use')).toBe(0);
      expect(await metric(server.url, 'lithe_request_queue_time_seconds_count')).toBe(2);
    } finally {
      await server.close();
    }
  });

  it('a budget that holds no cache fails the load with what to change; requests get a 503', async () => {
    const app = createServer({ modelId: MODEL_ID, pipeline, kvBudget: 1000 });
    await expect(app.lithe.ready).rejects.toThrow(/KV budget of 1000 bytes holds no KV cache: one of 256 tokens takes \d+ bytes; raise --kv-budget to at least \d+ or lower --cache-size/);
    const health = await app.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(503);
    const r = await app.inject({ method: 'POST', url: '/v1/completions', payload: { model: MODEL_ID, prompt: 'x', max_tokens: 2 } });
    expect(r.statusCode).toBe(503);
    expect(r.json()).toMatchObject({ error: { code: 'model_load_failed' } });
    expect(r.headers['retry-after']).toBeUndefined();
    await app.close();
  });

  it('a quantized KV cache (kv-quant int8) is smaller, so the same budget runs more generations', async () => {
    const int8 = await createPipeline({ model: testModelDir(), cacheSize: CONTEXT, plugins: [kvQuant({ bits: 8 })] });
    try {
      const budget = 4 * pipeline.cacheBytes;
      // int8 codes plus a scale and zero point per token and head (large beside the tiny head size).
      expect(int8.cacheBytes).toBeLessThan(0.7 * pipeline.cacheBytes);
      const dense = await startTestServer({ pipeline, parallel: 16, kvBudget: budget });
      const quant = await startTestServer({ pipeline: int8, parallel: 16, kvBudget: budget });
      try {
        expect(await metric(dense.url, 'lithe_kv_cache_sessions')).toBe(4);
        expect(await metric(quant.url, 'lithe_kv_cache_sessions')).toBe(Math.floor(budget / int8.cacheBytes));
        expect(await metric(quant.url, 'lithe_kv_cache_sessions')).toBeGreaterThanOrEqual(6);
        const r = await quant.client.completions.create({ model: MODEL_ID, prompt: 'The jury', max_tokens: 4, temperature: 0 });
        expect(r.usage!.completion_tokens).toBe(4);
      } finally {
        await Promise.all([dense.close(), quant.close()]);
      }
    } finally {
      int8.dispose();
    }
  });
});

describe('prefix caching', () => {
  const turn1 = [
    { role: 'system' as const, content: 'You are a careful reader of old newspapers. Answer in full sentences and quote the text.' },
    { role: 'user' as const, content: 'What did the jury say about the election?' },
  ];

  async function twoTurns(server: TestServer) {
    const a = await server.client.chat.completions.create({ model: MODEL_ID, messages: turn1, max_tokens: 8, temperature: 0 });
    const turn2 = [...turn1, { role: 'assistant' as const, content: a.choices[0].message.content! }, { role: 'user' as const, content: 'And the mayor?' }];
    const b = await server.client.chat.completions.create({ model: MODEL_ID, messages: turn2, max_tokens: 8, temperature: 0 });
    return { a, b };
  }

  it("the next chat turn reuses the previous turn's KV: usage.prompt_tokens_details.cached_tokens, same answer as without", async () => {
    const fresh = await loadTestPipeline();
    const ref = await loadTestPipeline();
    const on = await startTestServer({ pipeline: fresh, parallel: 2 });
    const off = await startTestServer({ pipeline: ref, parallel: 2, prefixCache: false });
    try {
      const withCache = await twoTurns(on);
      const without = await twoTurns(off);
      expect(withCache.a.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
      expect(withCache.b.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThanOrEqual(withCache.a.usage!.prompt_tokens);
      expect(without.b.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
      expect(withCache.b.choices[0].message.content).toBe(without.b.choices[0].message.content);
      expect(await metric(on.url, 'lithe_prompt_tokens_cached_total')).toBe(withCache.b.usage!.prompt_tokens_details!.cached_tokens);
      expect(await metric(off.url, 'lithe_prompt_tokens_cached_total')).toBe(0);
      // The raw response carries the same field.
      const raw = await post(`${on.url}/v1/chat/completions`, { model: MODEL_ID, messages: turn1, max_tokens: 2 });
      expect((raw.json as { usage: { prompt_tokens_details: { cached_tokens: number } } }).usage.prompt_tokens_details.cached_tokens).toBe(withCache.a.usage!.prompt_tokens - 1);
    } finally {
      await Promise.all([on.close(), off.close()]);
      fresh.dispose();
      ref.dispose();
    }
  });
});
