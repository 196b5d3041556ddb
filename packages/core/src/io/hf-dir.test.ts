import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryByteSource } from './byte-source.js';
import { loadHFDir, type ModelFiles } from './hf-dir.js';
import { nodeModelFiles } from './node-model-files.js';
import { buildSafetensors, type Built } from './test-helpers.js';

let root: string;
let n = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'lithe-hf-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const CONFIG = { model_type: 'llama', hidden_size: 8, num_hidden_layers: 1 };

/** Writes a fresh model directory with the given files (objects are JSON-encoded). */
async function modelDir(files: Record<string, unknown>): Promise<string> {
  const dir = join(root, `m${n++}`);
  await mkdir(dir);
  for (const [name, content] of Object.entries(files)) {
    const body = content instanceof Uint8Array || typeof content === 'string' ? content : JSON.stringify(content);
    await writeFile(join(dir, name), body);
  }
  return dir;
}

const load = (dir: string) => loadHFDir(nodeModelFiles(dir));

function twoShards(): { a: Built; b: Built; index: { metadata: object; weight_map: Record<string, string> } } {
  const a = buildSafetensors([
    { name: 'embed.weight', dtype: 'BF16', shape: [16, 8] },
    { name: 'layers.0.attn.q.weight', dtype: 'F16', shape: [8, 8] },
  ]);
  const b = buildSafetensors([
    { name: 'layers.0.mlp.up.weight', dtype: 'F32', shape: [8, 4] },
    { name: 'lm_head.weight', dtype: 'I8', shape: [16, 8] },
  ]);
  const weight_map = {
    'embed.weight': 'model-00001-of-00002.safetensors',
    'layers.0.attn.q.weight': 'model-00001-of-00002.safetensors',
    'layers.0.mlp.up.weight': 'model-00002-of-00002.safetensors',
    'lm_head.weight': 'model-00002-of-00002.safetensors',
  };
  return { a, b, index: { metadata: { total_size: 0 }, weight_map } };
}

describe('loadHFDir', () => {
  it('loads a single-file model with its JSON files', async () => {
    const w = buildSafetensors([{ name: 'w', dtype: 'F32', shape: [3, 2] }, { name: 'v', dtype: 'U8', shape: [5] }]);
    const dir = await modelDir({
      'config.json': CONFIG,
      'tokenizer_config.json': { chat_template: '{{ messages }}' },
      'model.safetensors': w.bytes,
    });
    const model = await load(dir);
    try {
      expect(model.location).toBe(dir);
      expect(model.config).toEqual(CONFIG);
      expect(model.generationConfig).toBeNull();
      expect(model.tokenizerJson).toBeNull();
      expect(model.tokenizerConfig).toEqual({ chat_template: '{{ messages }}' });
      expect([...model.weights.keys()].sort()).toEqual(['v', 'w']);
      expect(model.weightBytes).toBe(24 + 5);
      const entry = model.weights.get('w')!;
      expect(entry).toMatchObject({ dtype: 'f32', shape: [3, 2], byteLength: 24 });
      expect(await entry.file.read('w')).toEqual(w.tensors.get('w'));
    } finally {
      await model.close();
    }
    await model.close(); // idempotent
  });

  it('loads every tensor of a sharded model', async () => {
    const { a, b, index } = twoShards();
    const dir = await modelDir({
      'config.json': CONFIG,
      'generation_config.json': { eos_token_id: 2 },
      'tokenizer.json': { model: { type: 'BPE' } },
      'model.safetensors.index.json': index,
      'model-00001-of-00002.safetensors': a.bytes,
      'model-00002-of-00002.safetensors': b.bytes,
    });
    const model = await load(dir);
    try {
      expect(model.generationConfig).toEqual({ eos_token_id: 2 });
      expect(model.tokenizerJson).toEqual({ model: { type: 'BPE' } });
      expect(model.weights.size).toBe(4);
      expect(model.weightBytes).toBe(a.data.length + b.data.length);
      for (const built of [a, b]) {
        for (const [name, bytes] of built.tensors) {
          const entry = model.weights.get(name)!;
          expect(entry.file.source.name).toBe(join(dir, index.weight_map[name]));
          expect(await entry.file.read(name)).toEqual(bytes);
        }
      }
    } finally {
      await model.close();
    }
    await expect(model.weights.get('lm_head.weight')!.file.read('lm_head.weight')).rejects.toThrow(/read after close/);
  });

  it('also loads shard tensors the weight_map does not list', async () => {
    const { a, b, index } = twoShards();
    delete (index.weight_map as Record<string, string>)['lm_head.weight'];
    const dir = await modelDir({
      'config.json': CONFIG,
      'model.safetensors.index.json': index,
      'model-00001-of-00002.safetensors': a.bytes,
      'model-00002-of-00002.safetensors': b.bytes,
    });
    const model = await load(dir);
    expect(model.weights.has('lm_head.weight')).toBe(true);
    await model.close();
  });

  it('rejects an index that points at a missing shard', async () => {
    const { a, index } = twoShards();
    const dir = await modelDir({
      'config.json': CONFIG,
      'model.safetensors.index.json': index,
      'model-00001-of-00002.safetensors': a.bytes,
    });
    await expect(load(dir)).rejects.toThrow(
      /model\.safetensors\.index\.json: weight_map names shard 'model-00002-of-00002\.safetensors'.*does not exist/,
    );
  });

  it('rejects an index entry whose shard lacks the tensor', async () => {
    const { a, b, index } = twoShards();
    index.weight_map['layers.0.missing'] = 'model-00001-of-00002.safetensors';
    index.weight_map['lm_head.weight'] = 'model-00001-of-00002.safetensors'; // actually in shard 2
    const dir = await modelDir({
      'config.json': CONFIG,
      'model.safetensors.index.json': index,
      'model-00001-of-00002.safetensors': a.bytes,
      'model-00002-of-00002.safetensors': b.bytes,
    });
    await expect(load(dir)).rejects.toThrow(/tensor '(layers\.0\.missing|lm_head\.weight)' is in 'model-00001-of-00002\.safetensors', but that shard does not contain it/);
  });

  it('rejects a tensor stored in two shards', async () => {
    const { a, index } = twoShards();
    const dup = buildSafetensors([{ name: 'embed.weight', dtype: 'BF16', shape: [16, 8] }]);
    index.weight_map['embed.weight'] = 'dup.safetensors';
    index.weight_map['layers.0.mlp.up.weight'] = 'model-00001-of-00002.safetensors';
    delete (index.weight_map as Record<string, string>)['lm_head.weight'];
    const dir = await modelDir({
      'config.json': CONFIG,
      'model.safetensors.index.json': index,
      'model-00001-of-00002.safetensors': a.bytes,
      'dup.safetensors': dup.bytes,
    });
    await expect(load(dir)).rejects.toThrow(/tensor 'embed\.weight' is stored in two shards/);
  });

  it('rejects shard names that escape the directory', async () => {
    const inner = await modelDir({});
    const outside = buildSafetensors([{ name: 'w', dtype: 'F32', shape: [1] }]);
    await writeFile(join(root, 'evil.safetensors'), outside.bytes);
    for (const shard of ['../evil.safetensors', `${root}/evil.safetensors`, 'sub\\x.safetensors', '..']) {
      await writeFile(join(inner, 'config.json'), JSON.stringify(CONFIG));
      await writeFile(join(inner, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { w: shard } }));
      await expect(load(inner)).rejects.toThrow(/not a plain file name/);
    }
  });

  it('explains a missing directory, a file, a missing config.json and missing weights', async () => {
    const missing = join(root, 'nope');
    expect(() => nodeModelFiles(missing)).toThrow(`model directory ${missing} does not exist`);
    const file = join(root, 'evil.safetensors');
    expect(() => nodeModelFiles(file)).toThrow(`${file} is not a directory`);

    const empty = await modelDir({ 'model.safetensors': buildSafetensors([]).bytes });
    await expect(load(empty)).rejects.toThrow(
      `${empty} is not a model directory: config.json is missing; expected an HF model directory with config.json and model.safetensors`,
    );

    const noWeights = await modelDir({ 'config.json': CONFIG, 'pytorch_model.bin': 'x' });
    await expect(load(noWeights)).rejects.toThrow(/no weights found: expected model\.safetensors or model\.safetensors\.index\.json/);
  });

  it('names the file and the JSON error for invalid JSON', async () => {
    const dir = await modelDir({ 'config.json': '{"hidden_size": 8,', 'model.safetensors': buildSafetensors([]).bytes });
    await expect(load(dir)).rejects.toThrow(new RegExp(`${escape(join(dir, 'config.json'))}: invalid JSON: .+`));
    const arr = await modelDir({ 'config.json': '[1]' });
    await expect(load(arr)).rejects.toThrow(/config\.json: expected a JSON object, got an array/);
    const badTok = await modelDir({ 'config.json': CONFIG, 'tokenizer_config.json': 'nope' });
    await expect(load(badTok)).rejects.toThrow(/tokenizer_config\.json: invalid JSON/);
  });

  it('surfaces safetensors errors with the shard path', async () => {
    const dir = await modelDir({ 'config.json': CONFIG, 'model.safetensors': new Uint8Array(3) });
    await expect(load(dir)).rejects.toThrow(`${join(dir, 'model.safetensors')}: not a safetensors file`);
  });

  it('works over any ModelFiles, e.g. in-memory files in a browser', async () => {
    const w = buildSafetensors([{ name: 'x', dtype: 'F16', shape: [4] }]);
    const store = new Map<string, Uint8Array | string>([
      ['config.json', JSON.stringify(CONFIG)],
      ['model.safetensors', w.bytes],
    ]);
    const files: ModelFiles = {
      location: 'upload',
      has: async (name) => store.has(name),
      readText: async (name) => String(store.get(name)),
      open: async (name) => memoryByteSource(`upload/${name}`, store.get(name) as Uint8Array),
    };
    const model = await loadHFDir(files);
    expect(await model.weights.get('x')!.file.read('x')).toEqual(w.tensors.get('x'));
    await model.close();
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
