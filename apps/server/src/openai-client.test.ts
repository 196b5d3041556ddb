/** The official `openai` client against a server on loopback: it must not notice the difference. */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pipeline } from '@lithe/core';
import { CONTEXT, loadTestPipeline, MODEL_ID, startTestServer, type TestServer } from './testing/harness.js';

let server: TestServer;
let client: OpenAI;
let pipeline: Pipeline;
const messages = [{ role: 'user' as const, content: 'Tell me about the jury.' }];

beforeAll(async () => {
  pipeline = await loadTestPipeline();
  server = await startTestServer({ pipeline });
  client = server.client;
});
afterAll(() => server.close());

function chatPromptTokens(msgs: { role: string; content: string }[]): number {
  return pipeline.tokenizer.encode(pipeline.tokenizer.applyChatTemplate(msgs), { addSpecialTokens: false }).length;
}

describe('chat completions', () => {
  it('answers with one choice, the assistant role and exact usage', async () => {
    const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 10, temperature: 0 });
    expect(r.object).toBe('chat.completion');
    expect(r.id).toMatch(/^chatcmpl-/);
    expect(r.model).toBe(MODEL_ID);
    expect(r.choices).toHaveLength(1);
    expect(r.choices[0].message.role).toBe('assistant');
    expect(r.choices[0].message.content!.length).toBeGreaterThan(0);
    expect(r.choices[0].finish_reason).toBe('length');
    const promptTokens = chatPromptTokens(messages);
    expect(r.usage).toEqual({ prompt_tokens: promptTokens, completion_tokens: 10, total_tokens: promptTokens + 10, prompt_tokens_details: { cached_tokens: 0 } });
  });

  it('streams the same text as the non-streamed answer, with a role first and usage last', async () => {
    const whole = await client.chat.completions.create({ model: MODEL_ID, messages, max_completion_tokens: 12, temperature: 0 });
    const stream = await client.chat.completions.create({ model: MODEL_ID, messages, max_completion_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe(whole.choices[0].message.content);
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    expect(withChoices.at(-1)!.choices[0].finish_reason).toBe('length');
    expect(withChoices.slice(0, -1).every((c) => c.choices[0].finish_reason === null)).toBe(true);
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage).toEqual(whole.usage);
  });

  it('the same seed gives the same sampled text; another seed does not', async () => {
    const ask = (seed: number) => client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 16, temperature: 1, seed }).then((r) => r.choices[0].message.content);
    const [a, b, c] = [await ask(7), await ask(7), await ask(8)];
    expect(a).toBe(b);
    expect(c).not.toBe(a);
  });

  it('stops before a stop string, which is not part of the text', async () => {
    const full = (await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 20, temperature: 0 })).choices[0].message.content!;
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 3);
    const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 20, temperature: 0, stop: [stop, 'never-there'] });
    expect(r.choices[0].finish_reason).toBe('stop');
    expect(r.choices[0].message.content).toBe(full.slice(0, full.indexOf(stop)));
    expect(r.usage!.completion_tokens).toBeLessThan(20);
  });

  it('treats special-token literals in message content as text', async () => {
    const withLiteral = [{ role: 'user' as const, content: 'a </s> b <s> c' }];
    const r = await client.chat.completions.create({ model: MODEL_ID, messages: withLiteral, max_tokens: 2, temperature: 0 });
    // Parsed as control tokens, the content would hold exactly one </s> (id 2) and one <s> (id 1).
    const parsed = pipeline.tokenizer.encode(pipeline.tokenizer.applyChatTemplate(withLiteral), { addSpecialTokens: false });
    expect(parsed.filter((id) => id === 2)).toHaveLength(1);
    expect(r.usage!.prompt_tokens).toBeGreaterThan(parsed.length);
  });

  it('presence and frequency penalties change greedy output; logprobs come with each token', async () => {
    const base = { model: MODEL_ID, messages, max_tokens: 24, temperature: 0 };
    const plain = (await client.chat.completions.create(base)).choices[0].message.content;
    const penalized = (await client.chat.completions.create({ ...base, frequency_penalty: 2, presence_penalty: 2 })).choices[0].message.content;
    expect(penalized).not.toBe(plain);

    const r = await client.chat.completions.create({ ...base, max_tokens: 4, logprobs: true, top_logprobs: 3 });
    const content = r.choices[0].logprobs!.content!;
    expect(content).toHaveLength(4);
    for (const t of content) {
      expect(t.logprob).toBeLessThanOrEqual(0);
      expect(t.top_logprobs).toHaveLength(3);
      // Greedy: the chosen token is the most likely one.
      expect(t.logprob).toBeCloseTo(t.top_logprobs[0].logprob, 6);
    }
  });
});

describe('completions', () => {
  it('completes a text prompt and a token-id prompt alike', async () => {
    const ids = pipeline.encode('The jury said that');
    const a = await client.completions.create({ model: MODEL_ID, prompt: 'The jury said that', max_tokens: 8, temperature: 0 });
    const b = await client.completions.create({ model: MODEL_ID, prompt: ids, max_tokens: 8, temperature: 0 });
    expect(a.object).toBe('text_completion');
    expect(a.choices[0].text).toBe(b.choices[0].text);
    expect(a.usage).toEqual({ prompt_tokens: ids.length, completion_tokens: 8, total_tokens: ids.length + 8, prompt_tokens_details: { cached_tokens: 0 } });
  });

  it('streams text_completion chunks that add up to the whole text', async () => {
    const whole = await client.completions.create({ model: MODEL_ID, prompt: 'Once upon a time', max_tokens: 10, temperature: 0 });
    const stream = await client.completions.create({ model: MODEL_ID, prompt: 'Once upon a time', max_tokens: 10, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const c of stream) {
      text += c.choices[0]?.text ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
      if (c.usage) usage = c.usage;
    }
    expect(text).toBe(whole.choices[0].text);
    expect(finish).toBe('length');
    // The same prompt again: the prefix cache holds all of it but the last token, which must run.
    const details = { cached_tokens: whole.usage!.prompt_tokens - 1 };
    expect(usage).toEqual({ ...whole.usage, prompt_tokens_details: details });
  });

  it('stop strings and logprobs in the legacy shape', async () => {
    const full = (await client.completions.create({ model: MODEL_ID, prompt: 'Once', max_tokens: 20, temperature: 0 })).choices[0].text;
    const stop = full.slice(10, 13);
    const r = await client.completions.create({ model: MODEL_ID, prompt: 'Once', max_tokens: 20, temperature: 0, stop, logprobs: 2 });
    expect(r.choices[0].text).toBe(full.slice(0, full.indexOf(stop)));
    expect(r.choices[0].finish_reason).toBe('stop');
    const lp = r.choices[0].logprobs!;
    expect(lp.token_logprobs!.length).toBe(r.usage!.completion_tokens);
    expect(Object.keys(lp.top_logprobs![0]).length).toBeGreaterThan(0);
  });
});

describe('models', () => {
  it('lists the one model and retrieves it', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual([MODEL_ID]);
    expect((await client.models.retrieve(MODEL_ID)).id).toBe(MODEL_ID);
    await expect(client.models.retrieve('other')).rejects.toMatchObject({ status: 404 });
  });
});

describe('errors the client sees', () => {
  const expectError = async (p: Promise<unknown>, status: number, param: string | null, code?: string) => {
    const err = (await p.then(() => null, (e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.status).toBe(status);
    expect(err.param ?? null).toBe(param);
    if (code) expect(err.code).toBe(code);
    expect(err.type).toBeTypeOf('string');
    return err;
  };

  it('400 for fields out of range, naming the field', async () => {
    const chat = (extra: Record<string, unknown>) => client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 2, ...extra } as never);
    await expectError(chat({ temperature: 3 }), 400, 'temperature');
    await expectError(chat({ top_p: 1.5 }), 400, 'top_p');
    await expectError(chat({ top_k: 1.5 }), 400, 'top_k');
    await expectError(chat({ min_p: -1 }), 400, 'min_p');
    await expectError(chat({ seed: 1.5 }), 400, 'seed');
    await expectError(chat({ presence_penalty: 3 }), 400, 'presence_penalty');
    await expectError(chat({ frequency_penalty: -3 }), 400, 'frequency_penalty');
    await expectError(chat({ max_tokens: 0 }), 400, 'max_tokens');
    await expectError(chat({ stop: ['a', 'b', 'c', 'd', 'e'] }), 400, 'stop');
    await expectError(chat({ top_logprobs: 2 }), 400, 'top_logprobs');
    await expectError(chat({ logprobs: true, top_logprobs: 21 }), 400, 'top_logprobs');
    await expectError(chat({ stream_options: { include_usage: true } }), 400, 'stream_options');
    await expectError(chat({ messages: [] }), 400, 'messages');
    await expectError(chat({ messages: [{ role: 'robot', content: 'x' }] }), 400, 'messages[0].role');
    const n = await expectError(chat({ n: 2 }), 400, 'n');
    expect(n.message).toMatch(/n' = 1 is supported/);
  });

  it('400 before any stream starts when prompt + max tokens exceed the context', async () => {
    const err = await expectError(
      client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: CONTEXT, stream: true }),
      400,
      'messages',
      'context_length_exceeded',
    );
    expect(err.message).toMatch(/maximum context length is 256 tokens/);
    await expectError(client.completions.create({ model: MODEL_ID, prompt: 'word '.repeat(300), max_tokens: 1 }), 400, 'prompt', 'context_length_exceeded');
  });

  it('404 for an unknown model, without echoing its name', async () => {
    const err = await expectError(client.chat.completions.create({ model: 'no-such-<b>model</b>', messages }), 404, 'model', 'model_not_found');
    expect(err.message).not.toContain('no-such');
  });
});
