import { readFileSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPipeline, ropeInvFrequencies, type Pipeline } from '@lithe/core';
import { lckv } from '@lithe/lckv';
import { afterAll, describe, expect, it } from 'vitest';
import { streaming } from './streaming.js';
import { ReferenceStreamingLlama, type RefConfig } from './testing/reference-streaming.js';

// The trained LCKV fixture: layers 0 and 1 keep their own KV, layers 2 to 5 attend to layer 5's
// (layer_types 0_1_5_5_5_5), so layers 2 to 4 read KV from above, before this token is in it.
const dir = fileURLToPath(new URL('../../../tooling/fixtures/models/tiny-brown-lckv/', import.meta.url));
const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as RefConfig & { layer_types: string };
const source = config.layer_types.split('_').map((t) => Number.parseInt(t, 10));

/** The fixture's f32 weights, read from its safetensors file by hand (independent of core's loader). */
function fixtureWeights(): Map<string, Float32Array> {
  const bytes = readFileSync(join(dir, 'model.safetensors'));
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const weights = new Map<string, Float32Array>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = t.data_offsets;
    weights.set(name, new Float32Array(bytes.buffer.slice(bytes.byteOffset + 8 + n + a, bytes.byteOffset + 8 + n + b)));
  }
  return weights;
}

const pipelines: Pipeline[] = [];
afterAll(() => pipelines.forEach((p) => p.dispose()));
const open = async (plugins: Parameters<typeof createPipeline>[0]['plugins'], backend: 'cpu' | 'wasm' = 'cpu', model = dir) => {
  // f32 keys and values, so the comparisons with the f64 reference can be tight.
  const p = await createPipeline({ model, plugins, cacheSize: 64, backend, threads: 2, maxChunk: 16, kvDtype: 'f32' });
  pipelines.push(p);
  return p;
};

const text = 'The jury further said in term end presentments that the City Executive Committee, which had over-all charge of the election, deserves the praise';

/** Largest |a - b| relative to the largest |b|. */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

describe('streaming() on an LCKV model (lckv())', () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    it(`${backend}: every token's logits match an f64 StreamingLLM reference with layers reading KV from above, through 2 sinks + 6 window`, async () => {
      const p = await open([lckv({ prefill: 'sequential' }), streaming({ sinks: 2, window: 6 })], backend);
      const ids = p.encode(text);
      expect(ids.length).toBeGreaterThan(24);
      const ref = new ReferenceStreamingLlama(config, fixtureWeights(), ropeInvFrequencies(p.config), 2, 6, source);
      const want = ids.map((id) => ref.step(id));
      const cache = p.createCache();
      // Three KV layers (0, 1 and 5) in 8 slots, allocated once.
      expect(cache.nLayers).toBe(3);
      const bytes = cache.bytes;
      const first = (await p.backend.read(p.model.forward(Int32Array.from(ids.slice(0, 5)), cache, { logits: 'all' }))) as Float32Array;
      for (let t = 0; t < 5; t++) expect(relDiff(first.subarray(t * 32000, (t + 1) * 32000), want[t])).toBeLessThan(1e-5);
      for (let t = 5; t < ids.length; t++) {
        const row = (await p.backend.read(p.model.forward(Int32Array.from([ids[t]]), cache))) as Float32Array;
        expect(relDiff(row, want[t])).toBeLessThan(1e-5);
      }
      expect(cache.length).toBe(ids.length);
      expect(cache.bytes).toBe(bytes);
      cache.dispose();
    });
  }

  it('the iterative prefill of a chunk that fits the cache gives the logits of lckv() alone', async () => {
    const [s, plain] = [await open([lckv({ prefill: 'iterative' }), streaming({ sinks: 4, window: 28 })]), await open([lckv({ prefill: 'iterative' })])];
    const ids = Int32Array.from(s.encode(text).slice(0, 20));
    const logits = async (p: Pipeline) => Float32Array.from((await p.backend.read(p.model.forward(ids, p.createCache(32), { logits: 'all' }))) as Float32Array);
    expect(relDiff(await logits(s), await logits(plain))).toBeLessThan(1e-6);
  });

  it('generates past the cache and the window, and perplexity scores a stream longer than the cache', async () => {
    const p = await open([lckv(), streaming({ sinks: 4, window: 12 })]);
    const r = await p.generate('Once upon a time', { maxTokens: 40, temperature: 0, stopOnEos: false }).result;
    expect(r.completionTokens).toBe(40);
    const ppl = await p.perplexity(`${text} ${text}`, { context: 64 });
    expect(ppl.tokens).toBeGreaterThan(16);
    expect(Number.isFinite(ppl.perplexity)).toBe(true);
  });

  it("refuses a window wider than an LCKV layer's sliding window, saying which layer", async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'lithe-streaming-lckv-'));
    try {
      await cp(dir, tmp, { recursive: true });
      const c = JSON.parse(await readFile(join(tmp, 'config.json'), 'utf8')) as Record<string, unknown>;
      await writeFile(join(tmp, 'config.json'), JSON.stringify({ ...c, layer_types: '0_1s_5_5_5_5', sliding_window: 8 }));
      const p = await open([lckv(), streaming({ sinks: 2, window: 12 })], 'cpu', tmp);
      expect(() => p.createCache()).toThrow("streaming: window 12 exceeds layer 1's sliding window of 8 tokens; use --window 8 or less");
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
