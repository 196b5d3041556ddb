import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createPipeline } from '../pipeline/create-pipeline.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import { freshRng, maxAbsDiff } from '../testing/random.js';
import { TOKENIZER_CONFIG, TOKENIZER_JSON, tinyModel, type TinyModel } from '../testing/tiny-model.js';
import { memoryByteSource } from './byte-source.js';
import { GGUFValueType, parseGGUF } from './gguf.js';
import { convertToGGUF, type GGUFOutType } from './gguf-convert.js';
import { permuteQKRows } from './gguf-model.js';
import { tokenizerFromGGUF, vocabularyFromTokenizerJson } from './gguf-tokenizer.js';
import { GGUFWriter } from './gguf-writer.js';
import { loadHFDir, type ModelFiles } from './hf-dir.js';
import { buildSafetensors, type BuildEntry } from './test-helpers.js';
import { createTokenizer } from './tokenizer.js';
import { hfWeightSource } from '../pipeline/weight-source.js';
import { FORMAT_KEY_PREFIX, planQuantizedModel, withRecordedFormats } from '../quant/hf-quantized.js';
import { quantize } from '../quant/quantize.js';

const concat = (chunks: Uint8Array[]) => {
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
};

async function toGGUF(tiny: TinyModel, type: GGUFOutType): Promise<Uint8Array> {
  const dir = await loadHFDir(tiny.files);
  const chunks: Uint8Array[] = [];
  await convertToGGUF({ config: dir.config, weights: withRecordedFormats(dir, hfWeightSource(dir)), tokenizerJson: dir.tokenizerJson!, tokenizerConfig: dir.tokenizerConfig, name: 'tiny' }, type, (c) => void chunks.push(c.slice()));
  return concat(chunks);
}

/** ModelFiles over a config and one safetensors image, with the real tokenizer. */
function filesOf(config: Record<string, unknown>, st: Uint8Array): ModelFiles {
  const text: Record<string, string> = { 'config.json': JSON.stringify(config), 'tokenizer.json': TOKENIZER_JSON, 'tokenizer_config.json': TOKENIZER_CONFIG };
  return {
    location: 'memory:quantized',
    has: async (n) => n in text || n === 'model.safetensors',
    readText: async (n) => text[n],
    open: async (n) => memoryByteSource(n, st),
  };
}

/** The tiny model with its 2-D matrices block-quantized by `quantize` directly (the embedding too when asked). */
function quantizedFiles(tiny: TinyModel, format: 'q8_0' | 'q4_0', embedding: boolean): ModelFiles {
  const metadata: Record<string, string> = { format: 'pt' };
  const entries: BuildEntry[] = [];
  for (const [name, values] of tiny.weights) {
    const shape = shapeOf(tiny, name);
    if (shape.length === 2 && (embedding || name !== 'model.embed_tokens.weight')) {
      const q = quantize(format, values);
      entries.push({ name, dtype: 'U8', shape: [shape[0], q.length / shape[0]], data: q });
      metadata[FORMAT_KEY_PREFIX + name] = format;
    } else entries.push({ name, dtype: 'F32', shape, data: new Uint8Array(values.buffer.slice(0)) });
  }
  return filesOf(tiny.config, buildSafetensors(entries, metadata).bytes);
}

function shapeOf(tiny: TinyModel, name: string): number[] {
  const c = tiny.config as Record<string, number>;
  const hd = c.hidden_size / c.num_attention_heads;
  if (name.endsWith('norm.weight')) return [c.hidden_size];
  if (name === 'model.embed_tokens.weight' || name === 'lm_head.weight') return [c.vocab_size, c.hidden_size];
  if (name.includes('q_proj')) return [c.num_attention_heads * hd, c.hidden_size];
  if (name.includes('k_proj') || name.includes('v_proj')) return [c.num_key_value_heads * hd, c.hidden_size];
  if (name.includes('o_proj')) return [c.hidden_size, c.num_attention_heads * hd];
  if (name.includes('down_proj')) return [c.hidden_size, c.intermediate_size];
  return [c.intermediate_size, c.hidden_size];
}

async function logits(p: Pipeline, text: string): Promise<Float32Array> {
  const cache = p.createCache(64);
  const out = (await p.backend.read(p.model.forward(Int32Array.from(p.encode(text)), cache, { logits: 'all' }))) as Float32Array;
  cache.dispose();
  return out;
}

const TEXT = 'The jury said that the city was';
const rng = freshRng();
console.log(`gguf tests: model seed ${rng.seed}`);
const tiny = tinyModel({}, 'F32', rng.seed);
const hf = await createPipeline({ model: tiny.files, cacheSize: 64 });

describe('GGUF round trip (writer -> reader)', () => {
  it('f32: the same logits as the HF directory, exactly', async () => {
    const bytes = await toGGUF(tiny, 'f32');
    const g = await createPipeline({ model: memoryByteSource('tiny.gguf', bytes), cacheSize: 64 });
    expect(g.config).toEqual(hf.config);
    expect(maxAbsDiff(await logits(g, TEXT), await logits(hf, TEXT))).toBe(0);
  });

  for (const format of ['q8_0', 'q4_0'] as const) {
    it(`${format}: the same logits as the same blocks loaded from a quantized HF directory`, async () => {
      const g = await createPipeline({ model: memoryByteSource('tiny.gguf', await toGGUF(tiny, format)), cacheSize: 64 });
      expect(g.model.embed.dtype).toBe(format);
      const ref = await createPipeline({ model: quantizedFiles(tiny, format, true), cacheSize: 64 });
      expect(maxAbsDiff(await logits(g, TEXT), await logits(ref, TEXT))).toBe(0);
    });
  }

  it('f16 stores matrices as F16 and norms as F32', async () => {
    const file = await parseGGUF(memoryByteSource('t.gguf', await toGGUF(tiny, 'f16')));
    expect(file.tensors.get('blk.0.attn_q.weight')).toMatchObject({ typeName: 'F16', dims: [64, 64], shape: [64, 64] });
    expect(file.tensors.get('blk.1.ffn_norm.weight')?.typeName).toBe('F32');
    expect(file.get('llama.attention.head_count_kv')).toBe(2);
    expect(file.get('general.architecture')).toBe('llama');
    for (const t of file.tensors.values()) expect((t.byteOffset - file.dataOffset) % 32).toBe(0);
  });

  it('q/k rows are permuted as llama.cpp does, and the inverse undoes it', () => {
    const rows = 8; // 2 heads of 4: HF rows [0 1 | 2 3] per head -> llama.cpp [0 2 1 3]
    const bytes = Uint8Array.from({ length: rows * 3 }, (_, i) => Math.floor(i / 3));
    const p = permuteQKRows(bytes, rows, 2, false);
    expect(Array.from({ length: rows }, (_, r) => p[r * 3])).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
    expect(Array.from(permuteQKRows(p, rows, 2, true))).toEqual(Array.from(bytes));
  });

  it('createPipeline loads a .gguf path and generates what the HF directory generates (f32)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lithe-gguf-'));
    try {
      const path = join(dir, 'tiny.gguf');
      writeFileSync(path, await toGGUF(tiny, 'f32'));
      const g = await createPipeline({ model: path, cacheSize: 64 });
      const opts = { temperature: 0, maxTokens: 12, stopOnEos: false };
      const a = await g.generate(TEXT, opts).result;
      const b = await hf.generate(TEXT, opts).result;
      expect(a.tokenIds).toEqual(b.tokenIds);
      expect(a.text).toBe(b.text);
      g.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lithe-quantized HF directories', () => {
  for (const format of ['q8_0', 'q4_0'] as const) {
    it(`${format}: planQuantizedModel writes what quantize gives, and createPipeline loads it`, async () => {
      const dir = await loadHFDir(tiny.files);
      const plan = planQuantizedModel({ config: dir.config, weights: hfWeightSource(dir) }, format);
      const chunks: Uint8Array[] = [];
      await plan.write((c) => void chunks.push(c.slice()));
      const st = concat(chunks);
      expect(st.length).toBe(plan.bytes);
      expect(plan.config.quantization_config).toMatchObject({ quant_method: 'lithe', format });
      expect(plan.quantized).toContain('lm_head.weight');
      expect(plan.quantized).not.toContain('model.embed_tokens.weight');
      const p = await createPipeline({ model: filesOf(plan.config, st), cacheSize: 64 });
      expect(p.model.layers[0].q.bytes).toBe(64 * (64 / 32) * (format === 'q8_0' ? 34 : 18));
      expect(p.model.embed.dtype).toBe('f32');
      const ref = await createPipeline({ model: quantizedFiles(tiny, format, false), cacheSize: 64 });
      expect(maxAbsDiff(await logits(p, TEXT), await logits(ref, TEXT))).toBe(0);
      // Near the f32 model (a loose sanity bound: random weights are hard on 4 bits, and the q8_0
      // error reaches 2% of the largest logit on some seeds; a broken format is off by ~100%).
      const a = await logits(p, TEXT);
      const b = await logits(hf, TEXT);
      let err = 0, mag = 0;
      for (let i = 0; i < a.length; i++) {
        err = Math.max(err, Math.abs(a[i] - b[i]));
        mag = Math.max(mag, Math.abs(b[i]));
      }
      expect(err / mag).toBeLessThan(format === 'q8_0' ? 0.05 : 0.5);
    });
  }

  it('a recorded format on a tensor of the wrong storage is an error', async () => {
    const entries: BuildEntry[] = [{ name: 'x', dtype: 'F32', shape: [2, 32] }];
    const files = filesOf(tiny.config, buildSafetensors(entries, { [`${FORMAT_KEY_PREFIX}x`]: 'q8_0' }).bytes);
    const dir = await loadHFDir(files);
    expect(() => withRecordedFormats(dir, hfWeightSource(dir)).info('x')).toThrow(/stored as f32\[2, 32\], not as U8/);
    const dir2 = await loadHFDir(filesOf(tiny.config, buildSafetensors([{ name: 'x', dtype: 'U8', shape: [2, 34] }], { [`${FORMAT_KEY_PREFIX}x`]: 'q9_9' }).bytes));
    expect(() => withRecordedFormats(dir2, hfWeightSource(dir2)).info('x')).toThrow(/format 'q9_9'/);
  });
});

describe('tokenizer from GGUF metadata', () => {
  const hfTok = createTokenizer(TOKENIZER_JSON, TOKENIZER_CONFIG);
  it('encodes and decodes like tokenizer.json (SentencePiece vocabulary)', async () => {
    const v = vocabularyFromTokenizerJson(JSON.parse(TOKENIZER_JSON), JSON.parse(TOKENIZER_CONFIG));
    expect(v.model).toBe('llama');
    expect(v.types[0]).toBe(2);
    expect(v.types[1]).toBe(3);
    expect(v.types[3]).toBe(6);
    const w = new GGUFWriter();
    w.string('tokenizer.ggml.model', 'llama');
    w.array('tokenizer.ggml.tokens', GGUFValueType.STRING, v.tokens);
    w.array('tokenizer.ggml.scores', GGUFValueType.FLOAT32, v.scores);
    w.array('tokenizer.ggml.token_type', GGUFValueType.INT32, v.types);
    w.u32('tokenizer.ggml.bos_token_id', 1);
    w.u32('tokenizer.ggml.eos_token_id', 2);
    w.u32('tokenizer.ggml.unknown_token_id', 0);
    w.string('tokenizer.chat_template', '{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}');
    const file = await parseGGUF(memoryByteSource('tok.gguf', w.header().bytes));
    const { tokenizerJson, tokenizerConfig } = tokenizerFromGGUF(file.get, 'tok.gguf');
    const tok = createTokenizer(tokenizerJson, tokenizerConfig);
    const samples = [
      'Hello world.',
      'The jury said that the city executive committee, which had over-all charge of the election, deserves praise.',
      '  leading spaces and\nnew lines\n\n',
      'naïve café — 東京 and Ünïcödé, emoji 🦙🚀, math ∑ x² ≤ 10',
      'numbers 1234567 and symbols @#$%^&*() <s> </s>',
      'ᚠᛇᚻ᛫ᛒᛦᚦ unusual script ꧁꧂',
    ];
    for (const s of samples) {
      expect(tok.encode(s), s).toEqual(hfTok.encode(s));
      const ids = hfTok.encode(s);
      expect(tok.decode(ids)).toBe(hfTok.decode(ids));
    }
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenIds).toEqual([2]);
    expect(tok.applyChatTemplate([{ role: 'user', content: 'hi' }])).toBe('<s>hi');
  });

  it('keeps a string that starts with U+FEFF (a BOM token of a vocabulary) as it is', async () => {
    const w = new GGUFWriter().array('tokenizer.ggml.tokens', GGUFValueType.STRING, ['\uFEFF', '\uFEFFa', 'b']);
    const file = await parseGGUF(memoryByteSource('t.gguf', w.header().bytes));
    expect(file.get('tokenizer.ggml.tokens')).toEqual(['\uFEFF', '\uFEFFa', 'b']);
  });

  it('rejects an unknown tokenizer model', async () => {
    const w = new GGUFWriter().string('tokenizer.ggml.model', 'bert').array('tokenizer.ggml.tokens', GGUFValueType.STRING, ['a']);
    const file = await parseGGUF(memoryByteSource('t.gguf', w.header().bytes));
    expect(() => tokenizerFromGGUF(file.get, 't.gguf')).toThrow(/'bert' is not supported/);
  });
});

// ---------------------------------------------------------------------------------------------
// Malformed files: built by hand so every field can be wrong.

interface RawTensor { name: string; dims: bigint[]; type: number; offset: bigint }
interface RawFile {
  magic?: number;
  version?: number;
  tensorCount?: bigint;
  kvCount?: bigint;
  kvs?: Uint8Array[];
  tensors?: RawTensor[];
  data?: Uint8Array;
  alignment?: number;
}

class Raw {
  parts: number[] = [];
  u8(v: number) { this.parts.push(v & 0xff); return this; }
  u32(v: number) { for (let i = 0; i < 4; i++) this.u8(v >>> (8 * i)); return this; }
  u64(v: bigint) { for (let i = 0n; i < 8n; i++) this.u8(Number((v >> (8n * i)) & 0xffn)); return this; }
  str(s: string, len?: bigint) { const b = new TextEncoder().encode(s); this.u64(len ?? BigInt(b.length)); b.forEach((x) => this.u8(x)); return this; }
  bytes() { return Uint8Array.from(this.parts); }
}

const kvString = (key: string, value: string) => new Raw().str(key).u32(8).str(value).bytes();
const kvU32 = (key: string, value: number) => new Raw().str(key).u32(4).u32(value).bytes();

function rawGGUF(f: RawFile = {}): Uint8Array {
  const kvs = f.kvs ?? [kvString('general.architecture', 'llama')];
  const tensors = f.tensors ?? [{ name: 'a', dims: [32n, 2n], type: 0, offset: 0n }, { name: 'b', dims: [32n], type: 0, offset: 256n }];
  const r = new Raw().u32(f.magic ?? 0x46554747).u32(f.version ?? 3).u64(f.tensorCount ?? BigInt(tensors.length)).u64(f.kvCount ?? BigInt(kvs.length));
  for (const kv of kvs) kv.forEach((b) => r.u8(b));
  for (const t of tensors) {
    r.str(t.name).u32(t.dims.length);
    t.dims.forEach((d) => r.u64(d));
    r.u32(t.type).u64(t.offset);
  }
  const align = f.alignment ?? 32;
  while (r.parts.length % align) r.u8(0);
  (f.data ?? new Uint8Array(256 + 128)).forEach((b) => r.u8(b));
  return r.bytes();
}

const parseRaw = (bytes: Uint8Array) => parseGGUF(memoryByteSource('bad.gguf', bytes));

describe('malformed GGUF files are rejected with clear errors', () => {
  it('the hand-built file is valid to begin with', async () => {
    const f = await parseRaw(rawGGUF());
    expect(f.tensors.get('a')).toMatchObject({ shape: [2, 32], byteLength: 256 });
  });

  const cases: [string, () => Uint8Array, RegExp][] = [
    ['too short', () => new Uint8Array(10), /not a GGUF file: it has 10 bytes/],
    ['bad magic', () => rawGGUF({ magic: 0x12345678 }), /not a GGUF file: it starts with 0x12345678/],
    ['version 1', () => rawGGUF({ version: 1 }), /GGUF version 1 is not supported/],
    ['absurd tensor count', () => rawGGUF({ tensorCount: 1n << 40n }), /claims 1099511627776 tensors/],
    ['tensor count beyond 2^53', () => rawGGUF({ tensorCount: 1n << 62n }), /tensor count is 4611686018427387904, which is absurd/],
    ['absurd metadata count', () => rawGGUF({ kvCount: 1n << 33n }), /claims 8589934592 metadata entries/],
    ['huge key length', () => rawGGUF({ kvs: [new Raw().str('x', 1n << 50n).bytes()] }), /metadata key #0 is 1125899906842624 bytes long/],
    ['huge string value length', () => rawGGUF({ kvs: [new Raw().str('k').u32(8).str('v', 1n << 30n).bytes()] }), /metadata 'k' is 1073741824 bytes long/],
    ['string length past the end', () => rawGGUF({ kvs: [new Raw().str('k').u32(8).str('v', 5000n).bytes()] }), /truncated: metadata 'k' needs 5000 bytes/],
    ['array length overflow', () => rawGGUF({ kvs: [new Raw().str('k').u32(9).u32(4).u64(1n << 62n).bytes()] }), /claims 4611686018427387904 elements|is 4611686018427387904, which is absurd/],
    ['array longer than the file', () => rawGGUF({ kvs: [new Raw().str('k').u32(9).u32(4).u64(1000000n).bytes()] }), /claims 1000000 elements of UINT32, which cannot fit/],
    ['nested arrays', () => rawGGUF({ kvs: [new Raw().str('k').u32(9).u32(9).u64(1n).u32(9).u64(1n).u32(9).u64(0n).bytes()] }), /nests arrays more than 2 deep/],
    ['unknown value type', () => rawGGUF({ kvs: [new Raw().str('k').u32(13).u32(0).bytes()] }), /unknown value type 13/],
    ['bad bool', () => rawGGUF({ kvs: [new Raw().str('k').u32(7).u8(2).bytes()] }), /bool with byte value 2/],
    ['duplicate key', () => rawGGUF({ kvs: [kvU32('k', 1), kvU32('k', 2)] }), /'k' appears more than once/],
    ['invalid UTF-8 key', () => rawGGUF({ kvs: [new Raw().u64(2n).u8(0xff).u8(0xfe).u32(4).u32(0).bytes()] }), /not valid UTF-8/],
    ['alignment not a power of two', () => rawGGUF({ kvs: [kvU32('general.alignment', 24)] }), /general.alignment must be a u32 power of two, got UINT32 24/],
    ['alignment of the wrong type', () => rawGGUF({ kvs: [kvString('general.alignment', '32')] }), /general.alignment must be a u32/],
    ['unknown ggml type', () => rawGGUF({ tensors: [{ name: 'a', dims: [32n], type: 99, offset: 0n }] }), /tensor 'a': unknown ggml type 99/],
    ['an i-quant type', () => rawGGUF({ tensors: [{ name: 'a', dims: [256n], type: 19, offset: 0n }] }), /ggml type IQ1_S \(19\) is not supported/],
    ['five dimensions', () => rawGGUF({ tensors: [{ name: 'a', dims: [1n, 1n, 1n, 1n, 1n], type: 0, offset: 0n }] }), /5 dimensions/],
    ['a zero dimension', () => rawGGUF({ tensors: [{ name: 'a', dims: [32n, 0n], type: 0, offset: 0n }] }), /dimension 1 is 0/],
    ['dims overflow', () => rawGGUF({ tensors: [{ name: 'a', dims: [1n << 32n, 1n << 32n], type: 0, offset: 0n }] }), /overflow: the element count exceeds 2\^53/],
    ['byte size overflow', () => rawGGUF({ tensors: [{ name: 'a', dims: [1n << 26n, 1n << 26n], type: 0, offset: 0n }] }), /size in bytes overflows|run past the end/],
    ['rows not whole blocks', () => rawGGUF({ tensors: [{ name: 'a', dims: [33n, 2n], type: 8, offset: 0n }] }), /rows of 33 values do not fill whole Q8_0 blocks of 32/],
    ['misaligned offset', () => rawGGUF({ tensors: [{ name: 'a', dims: [32n], type: 0, offset: 4n }] }), /data offset 4 is not a multiple of the alignment 32/],
    ['offset past the end', () => rawGGUF({ tensors: [{ name: 'a', dims: [32n], type: 0, offset: 1n << 40n }] }), /run past the end of the file/],
    ['overlapping tensors', () => rawGGUF({ tensors: [{ name: 'a', dims: [32n, 2n], type: 0, offset: 0n }, { name: 'b', dims: [32n], type: 0, offset: 128n }] }), /tensors 'a' and 'b' overlap/],
    ['duplicate tensor', () => rawGGUF({ tensors: [{ name: 'a', dims: [32n], type: 0, offset: 0n }, { name: 'a', dims: [32n], type: 0, offset: 128n }] }), /tensor 'a' is listed more than once/],
    ['name too long', () => rawGGUF({ tensors: [{ name: 'x'.repeat(64), dims: [32n], type: 0, offset: 0n }] }), /ggml allows at most 63/],
  ];
  for (const [what, make, message] of cases) {
    it(what, async () => {
      await expect(parseRaw(make())).rejects.toThrow(message);
      await expect(parseRaw(make())).rejects.toThrow(/^bad\.gguf: /);
    });
  }

  it('every truncation of a valid file is rejected', async () => {
    const good = await toGGUF(tinyModel({ num_hidden_layers: 1, vocab_size: 64 }, 'F32'), 'q8_0').catch(() => rawGGUF());
    const full = rawGGUF();
    for (const bytes of [good, full]) {
      const cuts = new Set([4, 12, 23, 30, 60, Math.floor(bytes.length / 3), Math.floor(bytes.length / 2), bytes.length - 1]);
      for (const n of cuts) {
        if (n >= bytes.length) continue;
        await expect(parseRaw(bytes.subarray(0, n)), `cut at ${n}`).rejects.toThrow(/truncated|run past the end|fewer than the 24-byte|cannot fit/);
      }
    }
  });
});

afterAll(() => hf.dispose());
