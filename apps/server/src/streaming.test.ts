/** A server whose pipeline has a StreamingLLM cache (--window): requests past the context keep going. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streaming } from '@lithe/streaming';
import { CONTEXT, loadTestPipeline, MODEL_ID, startTestServer, type TestServer } from './testing/harness.js';

describe('streaming (sinks + window) cache', () => {
  let server: TestServer;
  let bounded: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ pipeline: await loadTestPipeline([streaming({ sinks: 4, window: 60 })]) });
    bounded = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
    await bounded.close();
  });

  // Just past the 256-token context; past the window of 60 every token is prefilled one by one.
  const long = 'the city said that the jury would meet again on Monday. '.repeat(23);

  it('answers a chat whose prompt and completion exceed the context, which a bounded server refuses', { timeout: 180_000 }, async () => {
    const messages = [{ role: 'user' as const, content: long }];
    const r = await server.client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 40, temperature: 0 }, { timeout: 150_000 });
    expect(r.usage!.prompt_tokens).toBeGreaterThan(CONTEXT);
    expect(r.usage!.completion_tokens).toBe(40);
    const err = await bounded.client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 40 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 400, code: 'context_length_exceeded' });
  });

  it('takes a completion prompt longer than the context', { timeout: 180_000 }, async () => {
    const r = await server.client.completions.create({ model: MODEL_ID, prompt: long, max_tokens: 20, temperature: 0 }, { timeout: 150_000 });
    expect(r.usage!.prompt_tokens).toBeGreaterThan(CONTEXT);
    expect(r.usage!.completion_tokens).toBe(20);
  });
});
