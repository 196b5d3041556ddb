// StreamingLLM (--sinks / --window) through the built CLI, and @lithe/streaming composed with
// @lithe/kv-quant (a quantized ring buffer), which only an app may depend on together.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPipeline, type Pipeline } from '@lithe/core';
import { maxAbsDiff } from '@lithe/core/testing';
import { kvQuant, kvQuantFormat, quantizedKVBytes, QuantizedKVCache } from '@lithe/kv-quant';
import { streaming, StreamingKVCache } from '@lithe/streaming';
import { TINY_CONFIG, writeRandomModel } from './testing/random-model.js';

const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));

function lithe(args: string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...process.env, LITHE_DEBUG: '' }, maxBuffer: 1 << 26 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(input);
  });
}

let root: string;
let model: string;
const pipelines: Pipeline[] = [];
const open = async (plugins: Parameters<typeof createPipeline>[0]['plugins'], backend: 'cpu' | 'wasm' | 'webgpu' = 'cpu', kvDtype: 'f16' | 'f32' = 'f16') => {
  const p = await createPipeline({ model, plugins, backend, threads: 1, maxChunk: 16, kvDtype });
  pipelines.push(p);
  return p;
};

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'lithe-streaming-'));
  model = join(root, 'model');
  writeRandomModel(model);
});

afterAll(() => {
  pipelines.forEach((p) => p.dispose());
  if (root) rmSync(root, { recursive: true, force: true });
});

const IDS = Array.from({ length: 48 }, (_, i) => 100 + ((i * 7919) % 5000));

describe('streaming over kv-quant: a quantized ring buffer', () => {
  for (const backend of ['cpu', 'wasm', 'webgpu'] as const) {
    it(`${backend}: int8 sinks + window equal plain int8 before any eviction, and stay close to f32 streaming after many`, async () => {
      let q: Pipeline;
      try {
        q = await open([kvQuant({ bits: 8 }), streaming({ sinks: 3, window: 13 })], backend);
      } catch (e) {
        if (backend === 'webgpu' && !process.env.CI) return console.warn(`skipping WebGPU: ${(e as Error).message}`);
        throw e;
      }
      const [plain, fp] = [await open([kvQuant({ bits: 8 })], backend), await open([streaming({ sinks: 3, window: 13 })], backend, 'f32')];
      const cache = q.createCache();
      expect(cache).toBeInstanceOf(StreamingKVCache);
      expect((cache as StreamingKVCache).capacity).toBe(16);
      const [pc, fc] = [plain.createCache(), fp.createCache()];
      expect(pc).toBeInstanceOf(QuantizedKVCache);
      // 16 + 16 rollback int8 slots (codes, f16 scale and zero), plus the sinks' f32 copy (keys, values) and scratch.
      expect(cache.bytes).toBe(quantizedKVBytes({ nLayers: 2, nKVHeads: 2, headDim: 16, capacity: 32 }, kvQuantFormat({ bits: 8 })) + (2 * 2 * 3 + 3) * 32 * 4);
      let worst = 0;
      for (let t = 0; t < IDS.length; t++) {
        const id = Int32Array.of(IDS[t]);
        const a = Float32Array.from((await q.backend.read(q.model.forward(id, cache))) as Float32Array);
        const f = Float32Array.from((await fp.backend.read(fp.model.forward(id, fc))) as Float32Array);
        if (t < 16) {
          // Same codes in the same slots: the very same logits as kv-quant alone.
          const p = (await plain.backend.read(plain.model.forward(id, pc))) as Float32Array;
          expect(maxAbsDiff(a, p)).toBeLessThan(1e-5);
        }
        worst = Math.max(worst, maxAbsDiff(a, f));
      }
      // int8 rounding of keys and values, not a misplaced or mis-rotated slot (those differ by ~1).
      expect(worst).toBeLessThan(0.05);
      expect((cache as StreamingKVCache).evicted).toBe(IDS.length - 16);
      for (const c of [cache, pc, fc]) c.dispose();
    });
  }

  it('int4 too, and in any plugin order (streaming wraps the quantized cache)', async () => {
    const a = await open([streaming({ sinks: 2, window: 10 }), kvQuant({ bits: 4 })]);
    const cache = a.createCache() as StreamingKVCache;
    expect(cache).toBeInstanceOf(StreamingKVCache);
    const r = await a.generate(a.encode('Once upon a time'), { maxTokens: 40, temperature: 0 }).result;
    expect(r.completionTokens).toBe(40);
    cache.dispose();
  });
});

describe('--sinks and --window on the CLI', () => {
  const text = () => {
    const file = join(root, 'long.txt');
    const sentence = 'The jury further said in term end presentments that the City Executive Committee deserves the praise and thanks of the City of Atlanta. ';
    writeFileSync(file, sentence.repeat(30));
    return file;
  };

  it('generate runs past the model context (512) and matches the core API', async () => {
    const r = await lithe(['generate', '-m', model, '--backend', 'cpu', '-p', 'Once upon a time', '-t', '0', '-n', '600', '--window', '60', '--sinks', '4', '--json']);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { completion_tokens: number; token_ids: number[] };
    expect(out.completion_tokens).toBe(600);
    const p = await open([streaming({ sinks: 4, window: 60 })]);
    expect(out.token_ids).toEqual((await p.generate('Once upon a time', { maxTokens: 600, temperature: 0 }).result).tokenIds);
    const refused = await lithe(['generate', '-m', model, '-p', 'Once upon a time', '-n', '600']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/exceed the KV cache size/);
  });

  it('perplexity --context may exceed the model context: the text is scored as one stream', async () => {
    const file = text();
    const p = await open([streaming({ sinks: 4, window: 64 })]);
    const ids = p.encode(await import('node:fs').then((fs) => fs.readFileSync(file, 'utf8')));
    expect(ids.length).toBeGreaterThan(TINY_CONFIG.max_position_embeddings);
    const r = await lithe(['perplexity', '-m', model, '--backend', 'cpu', '-f', file, '--context', '2000', '--window', '64', '--json']);
    expect(r.stderr).toBe('');
    const got = JSON.parse(r.stdout) as { perplexity: number; tokens: number; context: number; sinks: number; window: number };
    expect(got).toMatchObject({ context: 2000, sinks: 4, window: 64, tokens: ids.length - 1 });
    expect(got.perplexity).toBe((await p.perplexity(await import('node:fs').then((fs) => fs.readFileSync(file, 'utf8')), { context: 2000 })).perplexity);
    const whole = JSON.parse((await lithe(['perplexity', '-m', model, '--backend', 'cpu', '-f', file, '--window', '64', '--json'])).stdout) as { perplexity: number; context: null };
    expect(whole).toMatchObject({ perplexity: got.perplexity, context: null });
    const refused = await lithe(['perplexity', '-m', model, '-f', file, '--context', '2000']);
    expect(refused.stderr).toMatch(/--context 2000 exceeds the model's context length \(max_position_embeddings 512\); --window <n> scores longer windows as one stream/);
    expect((await lithe(['perplexity', '-m', model, '-f', file, '--sinks', '4'])).stderr).toMatch(/--sinks needs --window <n> too/);
  });

  it('chat keeps going once the conversation outgrows the cache', async () => {
    const lines = 'hello\n'.repeat(6);
    const r = await lithe(['chat', '-m', model, '--backend', 'cpu', '-t', '0', '-n', '100', '--cache-size', '256', '--window', '48'], lines);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const p = await open([streaming({ window: 48 })]);
    const history: { role: string; content: string }[] = [];
    let expected = '';
    for (let turn = 0; turn < 6; turn++) {
      history.push({ role: 'user', content: 'hello' });
      const reply = (await p.chat(history, { maxTokens: 100, temperature: 0 }).result).text;
      history.push({ role: 'assistant', content: reply });
      expected += `${reply}\n`;
    }
    expect(p.encodeChat(history).length).toBeGreaterThan(512);
    expect(r.stdout).toBe(expected);
    const full = await lithe(['chat', '-m', model, '-t', '0', '-n', '100', '--cache-size', '256'], lines);
    expect(full.stderr).toMatch(/fills the KV cache \(256 tokens\)/);
  });

  it('bench reports the rolling cache', async () => {
    const r = await lithe(['bench', '-m', model, '--backend', 'wasm', '--prompt-tokens', '40', '--gen-tokens', '80', '--warmup', '0', '--window', '30', '--sinks', '2', '--json']);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { gen_tokens: number; streaming: unknown; kv_bytes: number };
    expect(out.gen_tokens).toBe(80);
    expect(out.streaming).toEqual({ sinks: 2, window: 30, rollback: 16 });
    // 2 layers x K and V x (32 + 16 rollback) slots x (2 KV heads x 16) in f16, plus the sinks' f32 copy and scratch.
    expect(out.kv_bytes).toBe(2 * 2 * 48 * 32 * 2 + (2 * 2 * 2 + 2) * 32 * 4);
  });
});
