// The CLI on the trained LCKV fixture: lckv() comes by itself, --lckv-prefill picks the prompt
// encoding, and --kv-quant quantizes the condensed cache (kv-quant composes through the cache chain).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPipeline } from '@lithe/core';
import { kvQuant, kvQuantFormat, quantizedKVBytes } from '@lithe/kv-quant';
import { lckv } from '@lithe/lckv';
import { pipelineOptions } from './options.js';
import { writeRandomModel } from './testing/random-model.js';

const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../../../tooling/fixtures/', import.meta.url));
const MODEL = `${FIXTURES}models/tiny-brown-lckv`;

function lithe(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, LITHE_DEBUG: '' }, maxBuffer: 1 << 26 }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });
}

async function json(args: string[]): Promise<Record<string, unknown>> {
  const r = await lithe([...args, '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

let root: string;
let file: string;
const text = readFileSync(`${FIXTURES}data/brown-heldout.txt`, 'utf8').slice(0, 700);

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'lithe-lckv-'));
  file = join(root, 'text.txt');
  writeFileSync(file, text);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('an LCKV model in the CLI', () => {
  it('gets the lckv() plugin by itself, with --lckv-prefill', async () => {
    expect((await pipelineOptions({ model: MODEL, backend: 'cpu', dtype: 'auto' })).plugins.map((p) => p.name)).toEqual(['lckv']);
    expect((await pipelineOptions({ model: MODEL, backend: 'cpu', dtype: 'auto', kvQuant: 'int8' })).plugins.map((p) => p.name)).toEqual(['kv-quant', 'lckv']);
    const plain = join(root, 'plain');
    writeRandomModel(plain);
    await expect(pipelineOptions({ model: plain, backend: 'cpu', dtype: 'auto', lckvPrefill: 'sequential' })).rejects.toThrow("--lckv-prefill applies to LCKV models (config.json model_type 'lckv-llama')");
  });

  it('perplexity --lckv-prefill sequential|iterative equals the core API in that mode', { timeout: 120_000 }, async () => {
    for (const prefill of ['sequential', 'iterative'] as const) {
      const r = await json(['perplexity', '-m', MODEL, '-f', file, '-c', '64', '--backend', 'wasm', '--threads', '1', '--lckv-prefill', prefill]);
      const p = await createPipeline({ model: MODEL, backend: 'wasm', threads: 1, plugins: [lckv({ prefill })] });
      expect(r.perplexity).toBe((await p.perplexity(text, { context: 64 })).perplexity);
      p.dispose();
    }
  });

  it('inspect counts KV bytes of the 3 KV-computing layers of 6', async () => {
    const r = await json(['inspect', '-m', MODEL, '--context', '100']);
    expect(r).toMatchObject({ model_type: 'lckv-llama', layers: 6 });
    // K and V × 3 layers × 2 KV heads × 32 dims, in f16 (the default --kv-dtype).
    expect((r.memory as Record<string, number>).kv_bytes_per_token).toBe(2 * 3 * 2 * 32 * 2);
  });

  it('--kv-quant int8 quantizes the condensed cache: 3 layers, perplexity within 1% of f32', { timeout: 120_000 }, async () => {
    const r = await json(['bench', '-m', MODEL, '--prompt-tokens', '16', '--gen-tokens', '8', '--kv-quant', 'int8', '--cache-size', '64', '--backend', 'cpu']);
    expect(r).toMatchObject({ kv_cache: 'int8', kv_bytes: quantizedKVBytes({ nLayers: 3, nKVHeads: 2, headDim: 32, capacity: 64 }, kvQuantFormat({ bits: 8 })) });
    const args = ['perplexity', '-m', MODEL, '-f', file, '-c', '64', '--backend', 'wasm', '--lckv-prefill', 'sequential'];
    const [fp, q] = [await json(args), await json([...args, '--kv-quant', 'int8'])];
    expect(q.tokens).toBe(fp.tokens);
    expect(Math.abs((q.perplexity as number) / (fp.perplexity as number) - 1)).toBeLessThan(0.01);
  });

  it('in the core API too: kv-quant and lckv in either order', async () => {
    for (const plugins of [
      [kvQuant({ bits: 4 }), lckv()],
      [lckv(), kvQuant({ bits: 4 })],
    ]) {
      const p = await createPipeline({ model: MODEL, backend: 'cpu', cacheSize: 32, plugins });
      const cache = p.createCache();
      expect([cache.kind, cache.nLayers, cache.bytes]).toEqual(['int4-asym', 3, quantizedKVBytes({ nLayers: 3, nKVHeads: 2, headDim: 32, capacity: 32 }, kvQuantFormat({ bits: 4 }))]);
      cache.dispose();
      const g = await p.generate('The jury said that', { temperature: 0, maxTokens: 4 }).result;
      expect(g.tokenIds.length).toBe(4);
      p.dispose();
    }
  });
});
