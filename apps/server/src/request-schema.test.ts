import { describe, expect, it } from 'vitest';
import { parseChatRequest, parseCompletionRequest, wellFormed } from './request-schema.js';

const V = 32000;
const chat = (extra: Record<string, unknown>) => parseChatRequest({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...extra }, V);
const param = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as { status: number; param: string | null }).status === 400 ? (e as { param: string | null }).param : `status ${(e as { status: number }).status}`;
  }
  return 'no error';
};

describe('request validation', () => {
  it('maps OpenAI fields to generation options', () => {
    const r = chat({ max_tokens: 5, temperature: 0.5, top_p: 0.9, top_k: 40, min_p: 0.1, seed: 3, stop: 'END', presence_penalty: 1, frequency_penalty: -1, logit_bias: { '13': -100 }, stream: true, stream_options: { include_usage: true } });
    expect(r).toMatchObject({ maxTokens: 5, temperature: 0.5, topP: 0.9, topK: 40, minP: 0.1, seed: 3, stop: ['END'], presencePenalty: 1, frequencyPenalty: -1, stream: true, includeUsage: true, logprobs: null });
    expect(r.logitBias).toEqual(new Map([[13, -100]]));
  });

  it('max_completion_tokens wins over max_tokens; top_k -1 and 0 are off; top_p 0 is greedy', () => {
    expect(chat({ max_tokens: 5, max_completion_tokens: 7 }).maxTokens).toBe(7);
    expect(chat({ top_k: -1 }).topK).toBeUndefined();
    expect(chat({ top_k: 0 }).topK).toBeUndefined();
    expect(chat({ top_p: 0, temperature: 1 })).toMatchObject({ temperature: 0, topP: undefined });
    expect(chat({}).temperature).toBe(1);
  });

  it('names the field of each invalid value', () => {
    expect(param(() => chat({ model: undefined }))).toBe('model');
    expect(param(() => chat({ model: 3 }))).toBe('model');
    expect(param(() => chat({ temperature: -0.1 }))).toBe('temperature');
    expect(param(() => chat({ temperature: Number.NaN }))).toBe('temperature');
    expect(param(() => chat({ stop: [''] }))).toBe('stop');
    expect(param(() => chat({ stop: 5 }))).toBe('stop');
    expect(param(() => chat({ logit_bias: { abc: 1 } }))).toBe('logit_bias');
    expect(param(() => chat({ logit_bias: { '32000': 1 } }))).toBe('logit_bias');
    expect(param(() => chat({ logit_bias: { '5': 101 } }))).toBe('logit_bias');
    expect(param(() => chat({ n: 2 }))).toBe('n');
    expect(param(() => chat({ stream: 'yes' }))).toBe('stream');
    expect(param(() => chat({ tools: [{ type: 'function' }] }))).toBe('tools');
    expect(param(() => chat({ response_format: { type: 'json_object' } }))).toBe('response_format');
    expect(param(() => chat({ messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }))).toBe('messages[0].content');
    expect(param(() => parseCompletionRequest({ model: 'm', prompt: [1, 2, 99999] }, V))).toBe('prompt');
    expect(param(() => parseCompletionRequest({ model: 'm', prompt: ['a', 'b'] }, V))).toBe('prompt');
    expect(param(() => parseCompletionRequest({ model: 'm', prompt: 'x', logprobs: 6 }, V))).toBe('logprobs');
    expect(param(() => parseCompletionRequest({ model: 'm', prompt: 'x', echo: true }, V))).toBe('echo');
  });

  it('accepts chat content parts, developer messages, and a batch of one prompt', () => {
    const r = chat({ messages: [{ role: 'developer', content: 'be brief' }, { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }] });
    expect(r.messages).toEqual([{ role: 'system', content: 'be brief' }, { role: 'user', content: 'ab' }]);
    expect(parseCompletionRequest({ model: 'm', prompt: ['one'] }, V).prompt).toBe('one');
    expect(parseCompletionRequest({ model: 'm', prompt: [[5, 6]] }, V).prompt).toEqual([5, 6]);
  });

  it('replaces lone surrogates', () => {
    expect(wellFormed('a\uD800b\uDC00c😀')).toBe('a\uFFFDb\uFFFDc😀');
  });
});
