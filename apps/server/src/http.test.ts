/** The wire format and the HTTP edges: SSE framing, bodies, auth, health, metrics. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { Pipeline } from '@lithe/core';
import { loadTestPipeline, metric, MODEL_ID, post, startTestServer, type TestServer } from './testing/harness.js';

let pipeline: Pipeline;
let server: TestServer;

beforeAll(async () => {
  pipeline = await loadTestPipeline();
  server = await startTestServer({ pipeline, maxBodyBytes: 64 * 1024 });
});
afterAll(() => server.close());

/** The raw SSE events of a streamed request: the JSON of each `data:` line, and the [DONE] marker. */
async function sse(path: string, body: unknown): Promise<{ status: number; contentType: string | null; raw: string; events: unknown[] }> {
  const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const raw = await res.text();
  const events = raw
    .split('\n\n')
    .filter((b) => b.length > 0)
    .map((b) => {
      expect(b.startsWith('data: ')).toBe(true);
      const data = b.slice('data: '.length);
      return data === '[DONE]' ? '[DONE]' : JSON.parse(data);
    });
  return { status: res.status, contentType: res.headers.get('content-type'), raw, events };
}

type Chunk = { id: string; object: string; choices: { delta?: Record<string, unknown>; text?: string; finish_reason: string | null }[]; usage?: unknown };

describe('SSE framing', () => {
  it('chat: one id, role first, finish_reason last, a usage chunk with no choices, then [DONE]', async () => {
    const r = await sse('/v1/chat/completions', { model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, stream: true, stream_options: { include_usage: true } });
    expect(r.status).toBe(200);
    expect(r.contentType).toMatch(/^text\/event-stream/);
    expect(r.raw.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(r.events.at(-1)).toBe('[DONE]');
    const chunks = r.events.slice(0, -1) as Chunk[];
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0].choices[0].delta).toMatchObject({ role: 'assistant' });
    expect(chunks.slice(1).every((c) => c.choices.length === 0 || !('role' in c.choices[0].delta!))).toBe(true);
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toMatchObject({ completion_tokens: 6 });
    const last = chunks.at(-2)!;
    expect(last.choices[0].finish_reason).toBe('length');
    expect(chunks.slice(0, -2).every((c) => c.choices[0].finish_reason === null)).toBe(true);
    // Before the usage chunk, every chunk says usage: null.
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
  });

  it('chat without include_usage: no usage chunk and no usage field', async () => {
    const r = await sse('/v1/chat/completions', { model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, stream: true });
    const chunks = r.events.slice(0, -1) as Chunk[];
    expect(chunks.every((c) => c.choices.length === 1 && !('usage' in c))).toBe(true);
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('length');
  });

  it('completions: text_completion chunks, finish_reason stop at a stop string, [DONE]', async () => {
    const full = (await post(`${server.url}/v1/completions`, { model: MODEL_ID, prompt: 'Once', max_tokens: 12, temperature: 0 })).json as { choices: { text: string }[] };
    const text = full.choices[0].text;
    const stop = text.slice(6, 9);
    const r = await sse('/v1/completions', { model: MODEL_ID, prompt: 'Once', max_tokens: 12, temperature: 0, stop, stream: true });
    const chunks = r.events.slice(0, -1) as Chunk[];
    expect(chunks.every((c) => c.object === 'text_completion')).toBe(true);
    expect(chunks.map((c) => c.choices[0].text).join('')).toBe(text.slice(0, text.indexOf(stop)));
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('stop');
    expect(r.events.at(-1)).toBe('[DONE]');
  });
});

describe('bodies', () => {
  const chatUrl = () => `${server.url}/v1/chat/completions`;

  it('413 in OpenAI shape for a body over the limit', async () => {
    const r = await post(chatUrl(), { model: MODEL_ID, messages: [{ role: 'user', content: 'x'.repeat(70 * 1024) }] });
    expect(r.status).toBe(413);
    expect(r.json).toMatchObject({ error: { type: 'invalid_request_error', code: 'request_too_large' } });
    const err = await server.client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'x'.repeat(70 * 1024) }] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 413 });
  });

  it('400 for invalid JSON, without quoting it', async () => {
    const r = await post(chatUrl(), '{"model": "tiny", "messages": [SECRET-BYTES');
    expect(r.status).toBe(400);
    expect(r.json).toEqual({ error: { message: 'The request body is not valid JSON.', type: 'invalid_request_error', param: null, code: null } });
    expect(r.text).not.toContain('SECRET');
  });

  it('400 for a body that is not UTF-8; the server keeps serving', async () => {
    const bytes = Buffer.concat([Buffer.from('{"model":"tiny-random","prompt":"'), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from('"}')]);
    const r = await post(`${server.url}/v1/completions`, new Uint8Array(bytes));
    expect(r.status).toBe(400);
    expect((r.json as { error: { message: string } }).error.message).toBe('The request body is not valid UTF-8.');
    const ok = await post(`${server.url}/v1/completions`, { model: MODEL_ID, prompt: 'lone \ud800 surrogate \udfff', max_tokens: 2 });
    expect(ok.status).toBe(200);
  });

  it('400 for an empty body, a non-object body and a huge prompt; errors never echo the input', async () => {
    expect((await post(chatUrl(), '')).status).toBe(400);
    expect((await post(chatUrl(), '[1,2]')).status).toBe(400);
    const huge = await post(`${server.url}/v1/completions`, { model: MODEL_ID, prompt: 'MARKER '.repeat(9000) });
    expect(huge.status).toBe(400);
    expect(huge.json).toMatchObject({ error: { param: 'prompt', code: 'context_length_exceeded' } });
    const bad = await post(chatUrl(), { model: MODEL_ID, messages: [{ role: 'MARKER', content: 'x' }], temperature: 'MARKER' });
    expect(bad.status).toBe(400);
    expect(huge.text + bad.text).not.toContain('MARKER');
  });

  it('deeply nested JSON and a flood of messages get clean answers', async () => {
    const deep = await post(chatUrl(), '['.repeat(30_000) + ']'.repeat(30_000));
    expect(deep.status).toBe(400);
    const many = await post(chatUrl(), { model: MODEL_ID, messages: Array.from({ length: 1000 }, () => ({ role: 'user', content: '' })) });
    expect(many.json).toMatchObject({ error: { param: 'messages', code: 'context_length_exceeded' } });
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  it('404 in OpenAI shape for an unknown route', async () => {
    const r = await post(`${server.url}/v1/embeddings`, { model: MODEL_ID, input: 'x' });
    expect(r.status).toBe(404);
    expect(r.json).toMatchObject({ error: { type: 'not_found_error' } });
  });
});

describe('metrics', () => {
  it('counts prompt and generated tokens and observes the latency histograms', async () => {
    const before = {
      prompt: await metric(server.url, 'lithe_prompt_tokens_total'),
      generated: await metric(server.url, 'lithe_generation_tokens_total'),
      ttft: await metric(server.url, 'lithe_time_to_first_token_seconds_count'),
      e2e: await metric(server.url, 'lithe_e2e_request_latency_seconds_count'),
      itl: await metric(server.url, 'lithe_inter_token_latency_seconds_count'),
    };
    const r = (await post(`${server.url}/v1/completions`, { model: MODEL_ID, prompt: 'Hello there', max_tokens: 5 })).json as { usage: { prompt_tokens: number } };
    expect(await metric(server.url, 'lithe_prompt_tokens_total')).toBe(before.prompt + r.usage.prompt_tokens);
    expect(await metric(server.url, 'lithe_generation_tokens_total')).toBe(before.generated + 5);
    expect(await metric(server.url, 'lithe_time_to_first_token_seconds_count')).toBe(before.ttft + 1);
    expect(await metric(server.url, 'lithe_e2e_request_latency_seconds_count')).toBe(before.e2e + 1);
    expect(await metric(server.url, 'lithe_inter_token_latency_seconds_count')).toBe(before.itl + 4);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    for (const name of ['lithe_num_requests_running', 'lithe_num_requests_waiting']) expect(text).toContain(`# TYPE ${name} gauge`);
    expect(text).toContain('# TYPE lithe_time_to_first_token_seconds histogram');
    expect(text).toMatch(/lithe_time_to_first_token_seconds_bucket\{model_name="tiny-random",le="\+Inf"\} \d+/);
  });
});

describe('health and loading', () => {
  it('503 while the model loads, then 200; generation requests get 503 meanwhile', async () => {
    let finishLoading!: (p: Pipeline) => void;
    const loading = await startTestServer({ loadPipeline: () => new Promise<Pipeline>((r) => (finishLoading = r)) });
    try {
      const h1 = await fetch(`${loading.url}/health`);
      expect(h1.status).toBe(503);
      expect(await h1.json()).toEqual({ status: 'loading' });
      const early = await post(`${loading.url}/v1/chat/completions`, { model: MODEL_ID, messages: [{ role: 'user', content: 'x' }] });
      expect(early.status).toBe(503);
      expect(early.json).toMatchObject({ error: { code: 'model_loading' } });
      finishLoading(pipeline);
      await loading.app.lithe.ready;
      expect((await fetch(`${loading.url}/health`)).status).toBe(200);
      const later = await loading.client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'x' }], max_tokens: 2 });
      expect(later.choices[0].message.content).toBeTypeOf('string');
    } finally {
      await loading.close();
    }
  });

  it('503 with status error when loading fails', async () => {
    const failing = await startTestServer({ loadPipeline: () => Promise.reject(new Error('no such directory')) });
    try {
      await expect(failing.app.lithe.ready).rejects.toThrow('no such directory');
      const h = await fetch(`${failing.url}/health`);
      expect(h.status).toBe(503);
      expect(await h.json()).toMatchObject({ status: 'error' });
    } finally {
      await failing.close();
    }
  });
});

describe('API key', () => {
  it('401 for a missing or wrong key on /v1; health and metrics stay open', async () => {
    const keyed = await startTestServer({ pipeline, apiKey: 'sekret' });
    try {
      const wrong = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'guess', maxRetries: 0 });
      await expect(wrong.models.list()).rejects.toMatchObject({ status: 401, code: 'invalid_api_key' });
      const none = await fetch(`${keyed.url}/v1/models`);
      expect(none.status).toBe(401);
      expect(await none.json()).toMatchObject({ error: { type: 'authentication_error' } });
      expect((await keyed.client.models.list()).data[0].id).toBe(MODEL_ID);
      expect((await fetch(`${keyed.url}/health`)).status).toBe(200);
      expect((await fetch(`${keyed.url}/metrics`)).status).toBe(200);
    } finally {
      await keyed.close();
    }
  });
});
