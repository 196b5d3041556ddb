import { createPipeline, definePlugin, DenseKVCache, ropeInvFrequencies, type Pipeline } from '@lithe/core';
import { maxAbsDiff, tinyModel } from '@lithe/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { parseStreamingFlags, streaming } from './streaming.js';
import { StreamingKVCache } from './streaming-kv-cache.js';
import { ReferenceStreamingLlama, type RefConfig } from './testing/reference-streaming.js';

const seed = (Math.random() * 2 ** 31) >>> 0;
const model = tinyModel({ max_position_embeddings: 64 }, 'F32', seed, { neverEos: true });
const pipelines: Pipeline[] = [];
const open = async (plugins: Parameters<typeof createPipeline>[0]['plugins'], backend: 'cpu' | 'wasm' | 'webgpu' = 'cpu', cacheSize = 64) => {
  // f32 keys and values, so the comparisons with the f64 reference can be tight.
  const p = await createPipeline({ model: model.files, plugins, cacheSize, backend, threads: 1, maxChunk: 16, kvDtype: 'f32' });
  pipelines.push(p);
  return p;
};
afterAll(() => pipelines.forEach((p) => p.dispose()));

const IDS = Array.from({ length: 40 }, (_, i) => 100 + ((i * 7919) % 5000));

describe('streaming options and flags', () => {
  it('validates its options, declares what it wraps, and reads --sinks / --window', () => {
    const p = streaming({ window: 8 });
    expect(p.name).toBe('streaming');
    expect(p.composes).toEqual(['kv-quant']);
    expect(p.attention?.kind).toBe('streaming');
    expect(() => streaming({ sinks: 2.5, window: 8 })).toThrow(/sinks must be a non-negative integer, got 2.5/);
    expect(parseStreamingFlags({})).toBeNull();
    expect(parseStreamingFlags({ window: 100 })).toEqual({ sinks: 4, window: 100, rollback: 16 });
    expect(parseStreamingFlags({ sinks: 0, window: 100 })).toEqual({ sinks: 0, window: 100, rollback: 16 });
    expect(() => parseStreamingFlags({ sinks: 4 })).toThrow(/--sinks needs --window <n> too/);
  });

  it('fails with a clear message next to another cache provider that it does not wrap', async () => {
    const other = definePlugin(() => ({ name: 'paged-cache', createKVCache: (spec) => new DenseKVCache(spec) }));
    await expect(open([other(), streaming({ window: 8 })])).rejects.toThrow(/plugins 'paged-cache' and 'streaming' both provide createKVCache; only one may, unless 'streaming' declares composes: \['paged-cache'\]/);
  });
});

describe(`streaming in a pipeline against an f64 StreamingLLM reference (random model, seed ${seed})`, () => {
  for (const backend of ['cpu', 'wasm', 'webgpu'] as const) {
    it(`${backend}: logits of every token of a 40-token stream through 3 sinks + 9 window, prefilled in a chunk then token by token`, async () => {
      let p: Pipeline;
      try {
        p = await open([streaming({ sinks: 3, window: 9 })], backend);
      } catch (e) {
        if (backend === 'webgpu' && !process.env.CI) return console.warn(`skipping WebGPU: ${(e as Error).message}`);
        throw e;
      }
      const ref = new ReferenceStreamingLlama(model.config as unknown as RefConfig, model.weights, ropeInvFrequencies(p.config), 3, 9);
      const want = IDS.map((id) => ref.step(id));
      const cache = p.createCache();
      expect(cache).toBeInstanceOf(StreamingKVCache);
      // 7 tokens in one chunk (no eviction), then one at a time far past the 12 slots.
      const first = (await p.backend.read(p.model.forward(Int32Array.from(IDS.slice(0, 7)), cache, { logits: 'all' }))) as Float32Array;
      for (let t = 0; t < 7; t++) expect(maxAbsDiff(first.subarray(t * 32000, (t + 1) * 32000), want[t])).toBeLessThan(2e-4);
      // A 6-token forward: the model splits it where the cache says (5 free slots, then 1 at a time).
      const next = (await p.backend.read(p.model.forward(Int32Array.from(IDS.slice(7, 13)), cache, { logits: 'all' }))) as Float32Array;
      for (let t = 0; t < 6; t++) expect(maxAbsDiff(next.subarray(t * 32000, (t + 1) * 32000), want[7 + t])).toBeLessThan(2e-4);
      for (let t = 13; t < IDS.length; t++) {
        const row = (await p.backend.read(p.model.forward(Int32Array.from([IDS[t]]), cache))) as Float32Array;
        expect(maxAbsDiff(row, want[t])).toBeLessThan(2e-4);
      }
      expect(cache.length).toBe(IDS.length);
      cache.dispose();
    });
  }

  it('perplexity of a stream longer than the cache and the model context equals the reference NLL', async () => {
    const p = await open([streaming({ sinks: 2, window: 6 })]);
    const ref = new ReferenceStreamingLlama(model.config as unknown as RefConfig, model.weights, ropeInvFrequencies(p.config), 2, 6);
    const ids = p.encode('The jury further said in term end presentments that the City Executive Committee, which had over-all charge of the election, deserves the praise and thanks of the City of Atlanta for the manner in which the election was conducted.');
    const long = [...ids, ...ids.slice(1), ...ids.slice(1)];
    expect(long.length).toBeGreaterThan(p.config.maxPositionEmbeddings);
    let nll = 0;
    for (let t = 0; t + 1 < long.length; t++) {
      const logits = ref.step(long[t]);
      const m = Math.max(...logits);
      nll += m + Math.log(logits.reduce((s, v) => s + Math.exp(v - m), 0)) - logits[long[t + 1]];
    }
    const text = p.tokenizer.decode(long.slice(1));
    expect(p.encode(text)).toEqual(long);
    const r = await p.perplexity(text, { context: long.length });
    expect(r.tokens).toBe(long.length - 1);
    expect(Math.abs(r.meanNll - nll / (long.length - 1))).toBeLessThan(1e-4);
  });
});

describe(`rollback, as speculative decoding does it (random model, seed ${seed})`, () => {
  it('a decode step that verifies drafted tokens and rolls the rejected ones back keeps going past the window', async () => {
    // Each step feeds the last token and two drafts in one forward, keeps none of the drafts
    // (rejected), and truncates them.
    const rejectAll = definePlugin(() => ({
      name: 'reject-all-drafts',
      wrapDecode: () => async (state) => {
        const last = state.tokens[state.tokens.length - 1];
        const before = state.cache.length;
        const logits = await state.forward([last, 11, 12], 'all');
        state.cache.truncate(before + 1);
        return [state.sample(logits.subarray(0, 32000))];
      },
    }));
    const [p, plain] = [await open([streaming({ sinks: 2, window: 10 }), rejectAll()]), await open([streaming({ sinks: 2, window: 10 })])];
    const prompt = p.encode('Once upon a time');
    const r = await p.generate(prompt, { maxTokens: 60, temperature: 0 }).result;
    expect(r.completionTokens).toBe(60);
    const ref = await plain.generate(prompt, { maxTokens: 60, temperature: 0 }).result;
    // The rollback brings back what the rejected drafts evicted: the same tokens all the way.
    expect(r.tokenIds).toEqual(ref.tokenIds);
  });

  it('with rollback: 0, a rolled-back step leaves the window short: identical only until it first fills', async () => {
    const drop2 = definePlugin(() => ({
      name: 'drop-two-drafts',
      wrapDecode: () => async (state) => {
        const before = state.cache.length;
        const logits = await state.forward([state.tokens[state.tokens.length - 1], 11, 12], 'all');
        state.cache.truncate(before + 1);
        return [state.sample(logits.subarray(0, 32000))];
      },
    }));
    const [p, plain] = [await open([streaming({ sinks: 2, window: 10, rollback: 0 }), drop2()]), await open([streaming({ sinks: 2, window: 10, rollback: 0 })])];
    const prompt = p.encode('Once upon a time');
    const [r, ref] = [await p.generate(prompt, { maxTokens: 60, temperature: 0 }).result, await plain.generate(prompt, { maxTokens: 60, temperature: 0 }).result];
    const full = 12 - prompt.length;
    expect(r.tokenIds.slice(0, full)).toEqual(ref.tokenIds.slice(0, full));
    expect(r.tokenIds).not.toEqual(ref.tokenIds);
  });
});

describe(`unbounded generation (random model, seed ${seed})`, () => {
  it('generates 10k tokens, far past the cache and the model context, with constant KV bytes and backend memory', { timeout: 300_000 }, async () => {
    const p = await open([streaming({ sinks: 4, window: 28 })], 'wasm');
    expect(p.unboundedContext).toBe(true);
    const memory: number[] = [];
    const kv: number[] = [];
    p.on('token', (e) => {
      if (e.index % 500 === 499) {
        const m = p.backend.memory.snapshot();
        memory.push(m.currentTotal);
        kv.push(m.current.kv);
      }
    });
    const prompt = p.encode('Once upon a time');
    const gen = p.generate(prompt, { maxTokens: 10_000, temperature: 0 });
    const result = await gen.result;
    expect(result.completionTokens).toBe(10_000);
    expect(result.finishReason).toBe('length');
    expect(memory).toHaveLength(20);
    expect(new Set(memory).size).toBe(1);
    expect(new Set(kv).size).toBe(1);
    // The same cache serves the next generation: nothing new is allocated for it.
    const again = await p.generate(prompt, { maxTokens: 50, temperature: 0 }).result;
    expect(again.tokenIds).toEqual(result.tokenIds.slice(0, 50));
    expect(p.backend.memory.snapshot().currentTotal).toBe(memory[0]);
  });

  it('without streaming, the same request is refused as too long for the cache', async () => {
    const p = await open([]);
    expect(p.unboundedContext).toBe(false);
    await expect(p.generate(p.encode('Once upon a time'), { maxTokens: 100 }).result).rejects.toThrow(/exceed the KV cache size/);
  });
});
