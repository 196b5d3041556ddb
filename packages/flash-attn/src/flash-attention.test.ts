/**
 * The plugin end to end on the tiny-brown fixture (a trained model): greedy tokens identical to
 * core's attention and perplexity within 1e-4 relative on the wasm backend, and the one-line notice
 * where the flash kernels cannot serve (the CPU backend, a cache kind with only its own kernel); with
 * kv-quant's int8 cache, on wasm and on WebGPU, greedy tokens and perplexity match kv-quant's own
 * kernel.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { WasmBackend, WebGpuBackend, createPipeline, globalKernels, type KVCache, type LithePlugin, type Pipeline } from '@lithe/core';
import { tinyModel } from '@lithe/core/testing';
import { kvQuant } from '@lithe/kv-quant';
import { FlashWasm, flashAttention } from './index.js';

/** Same object, another `kind` (methods bound to the original). */
function rekind<T extends object>(target: T, kind: string): T {
  return new Proxy(target, {
    get: (t, key) => {
      if (key === 'kind') return kind;
      const v = Reflect.get(t, key, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

/** A cache plugin with its own kind and attention kernel (as kv-quant's is): core's dense cache and kernel under another name. */
const otherCache = (): LithePlugin => ({
  name: 'other-cache',
  createKVCache: (spec, _ctx, next) => {
    const cache = next(spec);
    const layer = cache.layer.bind(cache);
    return rekind(Object.assign(Object.create(cache) as KVCache, { layer: (i: number) => rekind(layer(i), 'other') }), 'other');
  },
  attention: { kind: 'other', kernels: { wasm: (q, c, p, out) => globalKernels.get('wasm', 'attention', 'dense')(q, { kind: 'dense', length: c.length, keys: c.keys, values: c.values }, p, out) } },
});

const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixture = `${root}tooling/fixtures/models/tiny-brown`;
const heldOut = `${root}tooling/fixtures/data/brown-heldout.txt`;
const haveFixture = existsSync(`${fixture}/model.safetensors`) && existsSync(heldOut);

const open: Pipeline[] = [];
afterAll(() => {
  for (const p of open) p.dispose();
});

async function pipeline(backend: 'cpu' | WasmBackend | WebGpuBackend, plugins: LithePlugin[], kvDtype: 'f16' | 'f32' = 'f32'): Promise<Pipeline> {
  const p = await createPipeline({ model: fixture, backend, plugins, cacheSize: 1024, kvDtype });
  open.push(p);
  return p;
}

/** A WebGPU backend (Dawn's software adapter where there is no GPU), or null where none can be had (CI fails). */
async function webgpu(): Promise<WebGpuBackend | null> {
  try {
    return await WebGpuBackend.create();
  } catch (e) {
    if (process.env.CI) throw e;
    return null;
  }
}

describe.skipIf(!haveFixture)('flashAttention() on tiny-brown', () => {
  const PROMPT = 'The jury further said in term-end presentments that the City Executive Committee';

  it('greedy tokens on wasm (2 threads) are identical to core attention, f32 and f16 caches', { timeout: 120_000 }, async () => {
    for (const kvDtype of ['f32', 'f16'] as const) {
      const [core, flash] = [await WasmBackend.create({ threads: 2 }), await WasmBackend.create({ threads: 2 })];
      const lines: string[] = [];
      const a = await pipeline(core, [], kvDtype);
      const b = await pipeline(flash, [flashAttention({ warn: (m) => lines.push(m) })], kvDtype);
      const opts = { temperature: 0, maxTokens: 48, stopOnEos: false };
      const ra = await a.generate(PROMPT, opts).result;
      const calls = vi.spyOn(FlashWasm.prototype, 'attention');
      const rb = await b.generate(PROMPT, opts).result;
      // Every layer of the prefill and of each decode step ran the flash kernel.
      expect(calls).toHaveBeenCalledTimes(b.model.config.nLayers * 48);
      calls.mockRestore();
      expect(lines).toEqual([]);
      expect(rb.tokenIds).toEqual(ra.tokenIds);
      expect(rb.completionTokens).toBe(48);
    }
  });

  it('greedy tokens on WebGPU are identical to core attention', { timeout: 300_000 }, async (t) => {
    let gpu: WebGpuBackend;
    try {
      gpu = await WebGpuBackend.create();
    } catch (e) {
      if (process.env.CI) throw e;
      return t.skip();
    }
    const a = await pipeline(gpu, []);
    const opts = { temperature: 0, maxTokens: 16, stopOnEos: false };
    const ra = await a.generate(PROMPT, opts).result;
    const lines: string[] = [];
    const b = await pipeline(await WebGpuBackend.create(), [flashAttention({ warn: (m) => lines.push(m) })]);
    // The model looks up the plugin's kernel, which falls back (and says so) only where it cannot serve.
    expect(b.backend.kernels.get('webgpu', 'attention', 'dense')).not.toBe(globalKernels.get('webgpu', 'attention', 'dense'));
    const rb = await b.generate(PROMPT, opts).result;
    expect(lines).toEqual([]);
    expect(rb.tokenIds).toEqual(ra.tokenIds);
  });

  it('perplexity on held-out text within 1e-4 relative of core attention', { timeout: 300_000 }, async () => {
    const full = readFileSync(heldOut, 'utf8');
    const text = full.slice(0, full.indexOf('\n', full.length / 8));
    const a = await pipeline(await WasmBackend.create({ threads: 2 }), []);
    const b = await pipeline(await WasmBackend.create({ threads: 2 }), [flashAttention()]);
    const [pa, pb] = [(await a.perplexity(text, { context: 512 })).perplexity, (await b.perplexity(text, { context: 512 })).perplexity];
    console.log(`tiny-brown perplexity, wasm: core attention ${pa}, flash ${pb}`);
    expect(Number.isFinite(pa)).toBe(true);
    expect(Math.abs(pb / pa - 1)).toBeLessThanOrEqual(1e-4);
  });

  it('with kvQuant({ bits: 8 }) in either order, flash reads the int8 cache: greedy tokens identical to kv-quant\'s kernel', { timeout: 120_000 }, async () => {
    const opts = { temperature: 0, maxTokens: 48, stopOnEos: false };
    const a = await pipeline(await WasmBackend.create({ threads: 2 }), [kvQuant({ bits: 8 })]);
    const ra = await a.generate(PROMPT, opts).result;
    for (const order of ['kv-quant first', 'flash-attn first']) {
      const lines: string[] = [];
      const plugins = [kvQuant({ bits: 8 }), flashAttention({ warn: (m) => lines.push(m) })];
      const b = await pipeline(await WasmBackend.create({ threads: 2 }), order === 'kv-quant first' ? plugins : plugins.reverse());
      const calls = vi.spyOn(FlashWasm.prototype, 'attention');
      const rb = await b.generate(PROMPT, opts).result;
      expect(calls, order).toHaveBeenCalledTimes(b.model.config.nLayers * 48);
      calls.mockRestore();
      expect(lines, order).toEqual([]);
      expect(rb.tokenIds, order).toEqual(ra.tokenIds);
    }
  });

  it('with kvQuant({ bits: 8 }), perplexity within 1e-4 relative of kv-quant\'s kernel', { timeout: 300_000 }, async () => {
    const full = readFileSync(heldOut, 'utf8');
    const text = full.slice(0, full.indexOf('\n', full.length / 8));
    const a = await pipeline(await WasmBackend.create({ threads: 2 }), [kvQuant({ bits: 8 })]);
    const b = await pipeline(await WasmBackend.create({ threads: 2 }), [kvQuant({ bits: 8 }), flashAttention()]);
    const [pa, pb] = [(await a.perplexity(text, { context: 512 })).perplexity, (await b.perplexity(text, { context: 512 })).perplexity];
    console.log(`tiny-brown perplexity, wasm, int8 cache: kv-quant's kernel ${pa}, flash ${pb}`);
    expect(Number.isFinite(pa)).toBe(true);
    expect(Math.abs(pb / pa - 1)).toBeLessThanOrEqual(1e-4);
  });

  it('with kvQuant({ bits: 8 }) in either order on WebGPU, flash reads the int8 cache: greedy tokens identical to kv-quant\'s kernel', { timeout: 300_000 }, async (t) => {
    const gpu = await webgpu();
    if (!gpu) return t.skip();
    const opts = { temperature: 0, maxTokens: 16, stopOnEos: false };
    const a = await pipeline(gpu, [kvQuant({ bits: 8 })]);
    const ra = await a.generate(PROMPT, opts).result;
    for (const order of ['kv-quant first', 'flash-attn first']) {
      const lines: string[] = [];
      const plugins = [kvQuant({ bits: 8 }), flashAttention({ warn: (m) => lines.push(m) })];
      const b = await pipeline((await webgpu())!, order === 'kv-quant first' ? plugins : plugins.reverse());
      const dispatches = vi.spyOn(WebGpuBackend.prototype, 'dispatch');
      const rb = await b.generate(PROMPT, opts).result;
      // Every layer of the prefill and of each decode step ran the flash tiles on the int8 codes.
      const keys = dispatches.mock.calls.map(([spec]) => spec.key);
      dispatches.mockRestore();
      expect(keys.filter((k) => k === 'flash-attn:tiles:q8a'), order).toHaveLength(b.model.config.nLayers * 16);
      expect(keys.filter((k) => k.startsWith('kv-quant:attention')), order).toEqual([]);
      expect(lines, order).toEqual([]);
      expect(rb.tokenIds, order).toEqual(ra.tokenIds);
    }
  });

  it('with kvQuant({ bits: 8 }) on WebGPU, perplexity within 1e-4 relative of kv-quant\'s kernel', { timeout: 300_000 }, async (t) => {
    const gpu = await webgpu();
    if (!gpu) return t.skip();
    const full = readFileSync(heldOut, 'utf8');
    const text = full.slice(0, full.indexOf('\n', full.length / 8));
    const a = await pipeline(gpu, [kvQuant({ bits: 8 })]);
    const b = await pipeline((await webgpu())!, [kvQuant({ bits: 8 }), flashAttention()]);
    const pa = (await a.perplexity(text, { context: 512 })).perplexity;
    const dispatches = vi.spyOn(WebGpuBackend.prototype, 'dispatch');
    const pb = (await b.perplexity(text, { context: 512 })).perplexity;
    const keys = dispatches.mock.calls.map(([spec]) => spec.key);
    dispatches.mockRestore();
    expect(keys).toContain('flash-attn:tiles:q8a');
    expect(keys.filter((k) => k.startsWith('kv-quant:attention'))).toEqual([]);
    console.log(`tiny-brown perplexity, WebGPU, int8 cache: kv-quant's kernel ${pa}, flash ${pb}`);
    expect(Number.isFinite(pa)).toBe(true);
    expect(Math.abs(pb / pa - 1)).toBeLessThanOrEqual(1e-4);
  });

  it('on the CPU backend core attention runs and the plugin says so once', async () => {
    const lines: string[] = [];
    const a = await pipeline('cpu', []);
    const b = await pipeline('cpu', [flashAttention({ warn: (m) => lines.push(m) })]);
    const opts = { temperature: 0, maxTokens: 6, stopOnEos: false };
    const [ra, rb] = [await a.generate(PROMPT, opts).result, await b.generate(PROMPT, opts).result];
    await b.generate(PROMPT, opts).result;
    expect(rb.tokenIds).toEqual(ra.tokenIds);
    expect(lines).toEqual([expect.stringMatching(/^flash-attn: no flash kernel for the 'cpu' backend/)]);
  });

  it('a cache kind with its own kernel (as kv-quant\'s) keeps it, and the plugin says so once', { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const a = await pipeline(await WasmBackend.create({ threads: 2 }), []);
    const b = await pipeline(await WasmBackend.create({ threads: 2 }), [otherCache(), flashAttention({ warn: (m) => lines.push(m) })]);
    const opts = { temperature: 0, maxTokens: 6, stopOnEos: false };
    const [ra, rb] = [await a.generate(PROMPT, opts).result, await b.generate(PROMPT, opts).result];
    await b.generate(PROMPT, opts).result;
    expect(rb.tokenIds).toEqual(ra.tokenIds);
    expect(lines).toEqual([expect.stringMatching(/^flash-attn: the 'other' KV cache brings its own attention kernel/)]);
  });
});

describe('flashAttention() where the wasm kernel cannot serve', () => {
  it('a head dim that is not a multiple of 4 runs core attention, with one notice', { timeout: 60_000 }, async () => {
    // hidden 72 over 4 heads: head dim 18.
    const model = tinyModel({ hidden_size: 72, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96 }, 'F32', 7);
    const lines: string[] = [];
    const open = (plugins: LithePlugin[]) => WasmBackend.create({ threads: 2 }).then((backend) => createPipeline({ model: model.files, backend, plugins, cacheSize: 64, kvDtype: 'f32' }));
    const [a, b] = [await open([]), await open([flashAttention({ warn: (m) => lines.push(m) })])];
    try {
      const opts = { temperature: 0, maxTokens: 8, stopOnEos: false };
      const [ra, rb] = [await a.generate('the city', opts).result, await b.generate('the city', opts).result];
      expect(rb.tokenIds).toEqual(ra.tokenIds);
      expect(lines).toEqual(['flash-attn: the wasm flash kernel cannot read head dim 18 (a multiple of 4 is needed); attention runs without flash kernels there']);
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});
