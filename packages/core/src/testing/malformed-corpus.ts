/**
 * A corpus of malformed model inputs, generated (never committed as binaries): broken
 * tokenizer.json, config.json, safetensors and GGUF files, each a small edit of a valid tiny model.
 * Every case names the message a clean rejection must carry. The loader tests run them all
 * (src/io/malformed-corpus.test.ts); `node tooling/fixtures/make-malformed-corpus.mjs --out DIR`
 * writes them to disk for trying other tools.
 */
import { memoryByteSource, type ByteSource } from '../io/byte-source.js';
import { ggufWriterFor } from '../io/gguf-convert.js';
import { GGUFValueType } from '../io/gguf.js';
import { GGUFWriter } from '../io/gguf-writer.js';
import type { ModelFiles } from '../io/hf-dir.js';
import { buildSafetensors, encodeSafetensors } from '../io/test-helpers.js';
import { tinyModel, type TinyModel } from './tiny-model.js';

export type CorpusClass = 'tokenizer.json' | 'config.json' | 'safetensors' | 'gguf';

export interface CorpusCase {
  name: string;
  kind: CorpusClass;
  /** A model directory's files (text or bytes), or one .gguf file's bytes. */
  files: Record<string, string | Uint8Array> | Uint8Array;
  /** What the error must say (beyond naming the file). */
  expect: RegExp;
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const DEEP = 200_000;
const deepArray = (n = DEEP) => '['.repeat(n) + ']'.repeat(n);

/** The files of a tiny model directory, as text and bytes. */
function dirFiles(m: TinyModel): Record<string, string | Uint8Array> {
  const out: Record<string, string | Uint8Array> = { 'model.safetensors': m.safetensors };
  for (const name of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) out[name] = textOf(m.files, name);
  return out;
}

// tinyModel's files are in memory; readText resolves at once, but the interface is async.
const texts = new WeakMap<ModelFiles, Record<string, string>>();
function textOf(files: ModelFiles, name: string): string {
  return texts.get(files)![name];
}

async function snapshot(m: TinyModel): Promise<void> {
  const t: Record<string, string> = {};
  for (const name of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) t[name] = await m.files.readText(name);
  texts.set(m.files, t);
}

/** ModelFiles over a case's files. */
export function corpusModelFiles(location: string, files: Record<string, string | Uint8Array>): ModelFiles {
  return {
    location,
    has: async (name) => Object.hasOwn(files, name),
    readText: async (name) => {
      const v = files[name];
      if (v === undefined) throw new Error(`${location}/${name}: no such file`);
      return typeof v === 'string' ? v : new TextDecoder().decode(v);
    },
    open: async (name): Promise<ByteSource> => {
      const v = files[name];
      if (v === undefined) throw new Error(`${location}/${name}: no such file`);
      return memoryByteSource(`${location}/${name}`, typeof v === 'string' ? new TextEncoder().encode(v) : v);
    },
  };
}

/** Builds every case (about 90); takes a second or two and some tens of MB. */
export async function malformedCorpus(): Promise<CorpusCase[]> {
  const base = tinyModel({}, 'F32', 7);
  await snapshot(base);
  const files = dirFiles(base);
  const cases: CorpusCase[] = [];

  // tokenizer.json
  const tok = JSON.parse(files['tokenizer.json'] as string) as Json;
  const withTokenizer = (name: string, edit: (j: Json) => void | string, expect: RegExp) => {
    const j = structuredClone(tok);
    const text = edit(j);
    cases.push({ name, kind: 'tokenizer.json', files: { ...files, 'tokenizer.json': typeof text === 'string' ? text : JSON.stringify(j) }, expect });
  };
  withTokenizer('not JSON', () => '{"model": {', /tokenizer.json: invalid JSON/);
  withTokenizer('an array', () => '[]', /tokenizer.json: expected a JSON object, got an array/);
  withTokenizer('nested 200k levels', () => `{"model": ${deepArray()}}`, /tokenizer.json: invalid JSON: it nests deeper than 64 levels/);
  withTokenizer('no model', (j) => void delete j.model, /has no "model" object/);
  withTokenizer('model is a string', (j) => void (j.model = 'BPE'), /has no "model" object/);
  withTokenizer('no decoder key', (j) => void delete j.decoder, /has no "decoder" key/);
  withTokenizer('vocab a string', (j) => void (j.model.vocab = 'abc'), /"model.vocab" must be an object mapping tokens to ids, got string/);
  withTokenizer('vocab an array (BPE)', (j) => void (j.model.vocab = [['a', 0]]), /"model.vocab" must be an object/);
  withTokenizer('vocab null', (j) => void (j.model.vocab = null), /"model.vocab" must be an object.*got null/);
  withTokenizer('vocab id negative', (j) => void (j.model.vocab['▁the'] = -1), /"model.vocab" entry "▁the" must map to a non-negative integer id/);
  withTokenizer('vocab id fractional', (j) => void (j.model.vocab['▁the'] = 1.5), /"model.vocab" entry "▁the" must map/);
  withTokenizer('vocab id a string', (j) => void (j.model.vocab['▁the'] = '5'), /"model.vocab" entry "▁the" must map/);
  withTokenizer('merges an object', (j) => void (j.model.merges = { a: 'b' }), /"model.merges" must be an array/);
  withTokenizer('merges missing', (j) => void delete j.model.merges, /"model.merges" must be an array/);
  withTokenizer('merge without a space', (j) => void (j.model.merges[5] = 'abc'), /"model.merges"\[5\] must be "a b"/);
  withTokenizer('merge of three', (j) => void (j.model.merges[6] = 'a b c'), /"model.merges"\[6\] must be "a b"/);
  withTokenizer('merge pair of numbers', (j) => void (j.model.merges[7] = [1, 2]), /"model.merges"\[7\] must be/);
  withTokenizer('merge a number', (j) => void (j.model.merges[8] = 42), /"model.merges"\[8\] must be/);
  withTokenizer('unknown model.type', (j) => void (j.model.type = 'Magic'), /"model.type" is string "Magic", which is not supported/);
  withTokenizer('model.type WordLevel', (j) => void (j.model.type = 'WordLevel'), /"model.type" is string "WordLevel", which is not supported/);
  withTokenizer('model.type a number', (j) => void (j.model.type = 3), /"model.type" is number 3/);
  withTokenizer('Unigram with BPE vocab', (j) => void (j.model.type = 'Unigram'), /"model.vocab" must be an array of \[piece, score\] pairs/);
  withTokenizer('Unigram bad entry', (j) => void ((j.model.type = 'Unigram'), (j.model.vocab = [['a', 0], ['b']])), /"model.vocab"\[1\] must be a \[piece, score\] pair/);
  withTokenizer('added_tokens an object', (j) => void (j.added_tokens = { id: 1 }), /"added_tokens" must be an array/);
  withTokenizer('added_tokens entry a string', (j) => void (j.added_tokens[0] = '<s>'), /"added_tokens"\[0\] must be an object/);
  withTokenizer('added_tokens id missing', (j) => void delete j.added_tokens[1].id, /"added_tokens"\[1\].id must be a non-negative integer/);
  withTokenizer('added_tokens id negative', (j) => void (j.added_tokens[1].id = -7), /"added_tokens"\[1\].id must be/);
  withTokenizer('added_tokens content empty', (j) => void (j.added_tokens[2].content = ''), /"added_tokens"\[2\].content must be a non-empty string/);
  withTokenizer('added_tokens content a number', (j) => void (j.added_tokens[2].content = 5), /"added_tokens"\[2\].content must be a non-empty string/);
  {
    const small = tinyModel({ vocab_size: 1000 }, 'F32', 7);
    await snapshot(small);
    cases.push({ name: 'vocabulary larger than the embedding', kind: 'tokenizer.json', files: dirFiles(small), expect: /the tokenizer has 32000 tokens .* the model's embedding has only 1000 rows/ });
  }

  // config.json
  const cfg = JSON.parse(files['config.json'] as string) as Json;
  const withConfig = (name: string, edit: (c: Json) => void | string, expect: RegExp) => {
    const c = structuredClone(cfg);
    const text = edit(c);
    cases.push({ name, kind: 'config.json', files: { ...files, 'config.json': typeof text === 'string' ? text : JSON.stringify(c) }, expect });
  };
  {
    const { 'config.json': _, ...noConfig } = files;
    cases.push({ name: 'missing', kind: 'config.json', files: noConfig, expect: /is not a model directory: config.json is missing/ });
  }
  withConfig('not JSON', () => '{"hidden_size": 64,', /config.json: invalid JSON/);
  withConfig('an array', () => '[1, 2]', /config.json: expected a JSON object, got an array/);
  withConfig('null', () => 'null', /config.json: expected a JSON object, got null/);
  withConfig('nested 200k levels', () => `{"rope_scaling": ${deepArray()}}`, /config.json: invalid JSON: it nests deeper than 64 levels/);
  withConfig('unsupported model_type', (c) => void ((c.model_type = 'gpt2'), (c.architectures = ['GPT2LMHeadModel'])), /unsupported architecture: model_type 'gpt2'/);
  withConfig('no model_type or architectures', (c) => void (delete c.model_type, delete c.architectures), /unsupported architecture: architectures \[\]/);
  withConfig('hidden_size 0', (c) => void (c.hidden_size = 0), /'hidden_size' must be a positive integer, got 0/);
  withConfig('hidden_size a string', (c) => void (c.hidden_size = '64'), /'hidden_size' must be a positive integer, got "64"/);
  withConfig('hidden_size missing', (c) => void delete c.hidden_size, /'hidden_size' must be a positive integer, got undefined/);
  withConfig('hidden_size not divisible by heads', (c) => void (c.hidden_size = 66), /hidden_size \(66\) is not divisible by num_attention_heads \(4\)/);
  withConfig('num_attention_heads 0', (c) => void (c.num_attention_heads = 0), /'num_attention_heads' must be a positive integer, got 0/);
  withConfig('kv heads do not divide heads', (c) => void (c.num_key_value_heads = 3), /must be a multiple of num_key_value_heads \(3\)/);
  withConfig('odd head_dim', (c) => void (c.head_dim = 15), /head_dim must be even/);
  withConfig('num_hidden_layers fractional', (c) => void (c.num_hidden_layers = 1.5), /'num_hidden_layers' must be a positive integer, got 1.5/);
  withConfig('intermediate_size null', (c) => void (c.intermediate_size = null), /'intermediate_size' must be a positive integer, got null/);
  withConfig('vocab_size 1e400', (c) => JSON.stringify(c).replace('"vocab_size":32000', '"vocab_size":1e400'), /'vocab_size' must be a positive integer, got a number too large to represent/);
  withConfig('rms_norm_eps 1e400', (c) => JSON.stringify(c).replace('"rms_norm_eps":0.00001', '"rms_norm_eps":1e400'), /'rms_norm_eps' must be a positive number, got a number too large to represent \(read as Infinity\)/);
  withConfig('rms_norm_eps negative', (c) => void (c.rms_norm_eps = -1e-5), /'rms_norm_eps' must be a positive number, got -0.00001/);
  withConfig('rope_theta a string', (c) => void (c.rope_theta = 'big'), /'rope_theta' must be a positive number, got "big"/);
  withConfig('rope_scaling "garbage"', (c) => void (c.rope_scaling = 'garbage'), /'rope_scaling' must be null or an object .* got "garbage"/);
  withConfig('rope_scaling an array', (c) => void (c.rope_scaling = [1]), /'rope_scaling' must be null or an object/);
  withConfig('rope_scaling without a type', (c) => void (c.rope_scaling = { factor: 2 }), /'rope_scaling' has no "rope_type"/);
  withConfig('rope_scaling yarn', (c) => void (c.rope_scaling = { rope_type: 'yarn', factor: 4 }), /rope_scaling type 'yarn' is not supported/);
  withConfig('rope_scaling factor a string', (c) => void (c.rope_scaling = { rope_type: 'linear', factor: 'x' }), /'rope_scaling.factor' must be a positive number, got "x"/);
  withConfig('rope_scaling type a number', (c) => void (c.rope_scaling = { type: 3 }), /rope_scaling type 3 is not supported/);
  withConfig('hidden_act gelu', (c) => void (c.hidden_act = 'gelu'), /hidden_act 'gelu' is not supported/);
  withConfig('max_position_embeddings negative', (c) => void (c.max_position_embeddings = -5), /'max_position_embeddings' must be a positive integer, got -5/);
  // A config whose shapes disagree with the weights.
  withConfig('intermediate_size wrong for the weights', (c) => void (c.intermediate_size = 128), /shape|expected/);

  // safetensors
  const st = (name: string, bytes: Uint8Array, expect: RegExp) => cases.push({ name, kind: 'safetensors', files: { ...files, 'model.safetensors': bytes }, expect });
  const u8 = (s: string) => new TextEncoder().encode(s);
  const one = (entry: Json, data = new Uint8Array(16)) => encodeSafetensors({ 'model.norm.weight': entry }, data);
  st('empty file', new Uint8Array(0), /not a safetensors file: it has 0 bytes/);
  st('5 bytes', new Uint8Array(5), /fewer than the 8-byte header length prefix/);
  st('header length 2^60', encodeSafetensors({}, new Uint8Array(0), 1n << 60n), /header length prefix is \d+, which is absurd/);
  st('header length past the limit', encodeSafetensors({}, new Uint8Array(0), 200n * 1024n * 1024n), /more than the \d+ byte limit/);
  st('header length past the file', encodeSafetensors({}, new Uint8Array(0), 4096n), /truncated: header says 4096 bytes/);
  st('header not UTF-8', encodeSafetensors(Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d])), /header is not valid UTF-8/);
  st('header not JSON', encodeSafetensors(u8('{"a": ')), /header is not valid JSON/);
  st('header an array', encodeSafetensors(u8('[1,2,3]')), /header must be a JSON object/);
  st('header nested 200k levels', encodeSafetensors(u8(`{"a": ${deepArray()}}`)), /invalid JSON header in memory:corpus\/model.safetensors: it nests deeper than 64 levels/);
  st('header nested 200k objects', encodeSafetensors(u8('{"a":'.repeat(DEEP) + '1' + '}'.repeat(DEEP))), /invalid JSON header in .*nests deeper/);
  st('duplicate tensor', encodeSafetensors(u8('{"x": {"dtype":"F32","shape":[1],"data_offsets":[0,4]}, "x": {"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'), new Uint8Array(8)), /tensor 'x' is listed more than once/);
  st('unknown dtype', one({ dtype: 'F128', shape: [4], data_offsets: [0, 16] }), /F128/);
  st('negative shape', one({ dtype: 'F32', shape: [-4], data_offsets: [0, 16] }), /shape/);
  st('shape a string', one({ dtype: 'F32', shape: '4', data_offsets: [0, 16] }), /shape/);
  st('offsets reversed', one({ dtype: 'F32', shape: [4], data_offsets: [16, 0] }), /data_offsets/);
  st('offsets past the data', one({ dtype: 'F32', shape: [4], data_offsets: [0, 1 << 20] }), /data_offsets|past the end|data section/);
  st('size disagrees with shape', one({ dtype: 'F32', shape: [5], data_offsets: [0, 16] }), /5|bytes/);
  st('entry not an object', one(7 as never), /model.norm.weight/);
  st('metadata not strings', encodeSafetensors({ __metadata__: { a: 1 } }), /__metadata__/);
  st('overlapping tensors', encodeSafetensors({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, new Uint8Array(24)), /overlap/);
  st('valid file without the model\'s tensors', buildSafetensors([{ name: 'x', dtype: 'F32', shape: [4] }]).bytes, /no tensor named|missing|'model\.embed_tokens\.weight'/);
  {
    // A weight of the wrong shape: embed_tokens with one column too few.
    const entries = [...base.shapes].map(([name, shape]) => ({ name, dtype: 'F32', shape: name === 'model.embed_tokens.weight' ? [shape[0], shape[1] - 1] : shape }));
    st('a tensor of the wrong shape', buildSafetensors(entries).bytes, /model\.embed_tokens\.weight.*shape|shape.*model\.embed_tokens\.weight/);
  }

  // GGUF: valid headers from the tiny model with one metadata entry changed; data is zeros (the
  // checks come before any tensor is read).
  const src = { name: 'tiny', config: base.config, weights: hfLikeSource(base), tokenizerJson: tok, tokenizerConfig: JSON.parse(files['tokenizer_config.json'] as string) as Json };
  const gguf = async (name: string, edit: (w: GGUFWriter) => void, expect: RegExp) => {
    const { writer } = ggufWriterFor(src, 'f32');
    edit(writer);
    const chunks: Uint8Array[] = [];
    await writer.write((t) => new Uint8Array(GGUFWriter.tensorBytes(t)), (c) => void chunks.push(c.slice()));
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    cases.push({ name, kind: 'gguf', files: out, expect });
  };
  await gguf('general.architecture missing', (w) => w.delete('general.architecture'), /general.architecture is missing/);
  await gguf('general.architecture a number', (w) => w.u32('general.architecture', 7), /general.architecture must be a string such as 'llama', got number 7/);
  await gguf('unsupported architecture', (w) => w.string('general.architecture', 'gpt2'), /GGUF architecture 'gpt2' is not supported/);
  await gguf('head_count 0', (w) => w.u32('llama.attention.head_count', 0), /llama.attention.head_count must be a positive integer, got 0/);
  await gguf('head_count missing', (w) => w.delete('llama.attention.head_count'), /llama.attention.head_count is missing/);
  await gguf('head_count a string', (w) => w.string('llama.attention.head_count', '4'), /llama.attention.head_count must be a number, got 4/);
  await gguf('block_count 0', (w) => w.u32('llama.block_count', 0), /llama.block_count must be a positive integer, got 0/);
  await gguf('embedding_length not divisible by heads', (w) => (w.u32('llama.embedding_length', 66), w.delete('llama.rope.dimension_count')), /llama.embedding_length \(66\) is not divisible by llama.attention.head_count \(4\)/);
  await gguf('head_count_kv 0', (w) => w.u32('llama.attention.head_count_kv', 0), /llama.attention.head_count_kv must be a positive integer, got 0/);
  await gguf('rms epsilon NaN', (w) => w.f32('llama.attention.layer_norm_rms_epsilon', NaN), /layer_norm_rms_epsilon must be a number, got NaN/);
  await gguf('rope scaling yarn', (w) => w.string('llama.rope.scaling.type', 'yarn'), /rope.scaling.type 'yarn' is not supported/);
  await gguf('no tokenizer', (w) => w.delete('tokenizer.ggml.model'), /tokenizer.ggml.model is missing/);
  await gguf('unknown tokenizer model', (w) => w.string('tokenizer.ggml.model', 'bert'), /tokenizer.ggml.model 'bert' is not supported/);
  await gguf('tokens not an array', (w) => w.u32('tokenizer.ggml.tokens', 5), /tokenizer.ggml.tokens/);
  await gguf('bos id past the vocabulary', (w) => w.u32('tokenizer.ggml.bos_token_id', 99999), /tokenizer.ggml.bos_token_id/);
  await gguf('scores of the wrong length', (w) => w.array('tokenizer.ggml.scores', GGUFValueType.FLOAT32, [0, 1]), /tokenizer.ggml.scores/);
  return cases;
}

/** The tiny model's weights as a WeightSource in HF names (what ggufWriterFor reads). */
function hfLikeSource(m: TinyModel) {
  let total = 0;
  for (const w of m.weights.values()) total += w.byteLength;
  return {
    totalBytes: total,
    names: () => m.weights.keys(),
    info: (name: string) => (m.shapes.has(name) ? { dtype: 'f32', shape: m.shapes.get(name)! } : undefined),
    read: async (name: string) => new Uint8Array(m.weights.get(name)!.buffer.slice(0)),
  };
}
