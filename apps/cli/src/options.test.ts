import { describe, expect, it } from 'vitest';
import { formatBytes, formatCount, formatTable } from './format.js';
import { decodeEscapes, generateOptions, integerAtLeast, numberIn } from './options.js';

describe('option parsers', () => {
  it('name the option and the accepted range', () => {
    const topP = numberIn('--top-p', 'in (0, 1]', (v) => v > 0 && v <= 1);
    expect(topP('0.9')).toBe(0.9);
    expect(() => topP('2')).toThrow('--top-p must be in (0, 1], got 2');
    expect(() => topP('')).toThrow("--top-p must be a number, got ''");
    const n = integerAtLeast('--max-tokens', 1);
    expect(n('12')).toBe(12);
    expect(() => n('1.5')).toThrow('--max-tokens must be an integer, got 1.5');
    expect(() => n('0')).toThrow('--max-tokens must be an integer >= 1, got 0');
  });

  it("flags override the model's sampling defaults, which override temperature 1", () => {
    const model = { temperature: 0.6, topP: 0.9, topK: 40 };
    expect(generateOptions({ maxTokens: 5 }, {})).toMatchObject({ maxTokens: 5, temperature: 1, topP: undefined, topK: undefined });
    expect(generateOptions({ maxTokens: 5 }, model)).toMatchObject({ temperature: 0.6, topP: 0.9, topK: 40 });
    expect(generateOptions({ maxTokens: 5, temperature: 0, topP: 1 }, model)).toMatchObject({ temperature: 0, topP: 1, topK: 40 });
  });
});

describe('--stop escapes', () => {
  it('decodes backslash escapes as other tools do, and leaves unknown ones as written', () => {
    expect(decodeEscapes('\\n\\n')).toBe('\n\n');
    expect(decodeEscapes('a\\tb\\r\\\\n')).toBe('a\tb\r\\n');
    expect(decodeEscapes('\\x41\\u00e9\\"')).toBe('Aé"');
    expect(decodeEscapes('C:\\dir\\q')).toBe('C:\\dir\\q');
    expect(decodeEscapes('plain')).toBe('plain');
    expect(generateOptions({ stop: ['\\n\\n', 'User:'] }, {}).stop).toEqual(['\n\n', 'User:']);
  });
});

describe('format', () => {
  it('sizes, counts and tables', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(2.5 * 2 ** 30)).toBe('2.50 GiB');
    expect(formatCount(1_100_048_384)).toBe('1.10B');
    expect(formatCount(999)).toBe('999');
    expect(formatTable([['a', '1'], ['long', '2'], ['', '']])).toBe('a     1\nlong  2\n');
  });
});
