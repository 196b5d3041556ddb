import { CpuBackend, DenseKVCache, WasmBackend, WebGpuBackend, parseConfig, ropeInvFrequencies, type Backend, type KVCache, type Tensor } from '@lithe/core';
import { TINY_CONFIG, freshRng, randn } from '@lithe/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { streamingAttention } from './attention.js';
import { StreamingKVCache } from './streaming-kv-cache.js';
import { KeptTokens, keptAttention } from './testing/reference-streaming.js';

const rng = freshRng();
// Odd sizes: 6 query heads over 3 KV heads of 16.
const config = parseConfig({ ...TINY_CONFIG, hidden_size: 96, num_attention_heads: 6, num_key_value_heads: 3 });
const { nHeads: H, nKVHeads: KV, headDim: D } = config;
const invFreq = ropeInvFrequencies(config);

let gpu: WebGpuBackend | null = null;
try {
  gpu = await WebGpuBackend.create();
} catch (e) {
  if (process.env.CI) throw e;
  console.warn(`skipping WebGPU tests: ${(e as Error).message}`);
}
const wasm = await WasmBackend.create({ threads: 1 });
afterAll(async () => {
  await wasm.close?.();
});
const BACKENDS: [string, Backend | null][] = [
  ['cpu', new CpuBackend()],
  ['wasm', wasm],
  ['webgpu', gpu],
];

const upload = (b: Backend, a: Float32Array, rows: number): Tensor => b.upload(new Uint8Array(a.slice().buffer), [rows, a.length / rows], 'f32', 'other');

function streamingCache(b: Backend, nLayers: number, sinks: number, window: number, dtype: 'f32' | 'f16' = 'f32', rollback = 0): StreamingKVCache {
  const inner: KVCache = new DenseKVCache({ backend: b, nLayers, nKVHeads: KV, headDim: D, capacity: sinks + window + rollback, dtype });
  return new StreamingKVCache(inner, { backend: b, kernels: b.kernels, config }, { sinks, window, rollback });
}

/**
 * Feeds `plan` chunks of random tokens (a negative entry rolls back that many) through the cache the
 * way the model does (rope at the stream position, write, attend, commit) and checks every output row
 * against dense f64 attention over exactly the kept tokens at their reassigned positions.
 */
async function check(b: Backend, sinks: number, window: number, plan: number[], dtype: 'f32' | 'f16' = 'f32', rollback = 0): Promise<number> {
  const nLayers = 2;
  const cache = streamingCache(b, nLayers, sinks, window, dtype, rollback);
  const rope = b.kernels.get(b.name, 'rope');
  const refs = Array.from({ length: nLayers }, () => new KeptTokens(sinks, window, rollback));
  let worst = 0;
  for (const T of plan) {
    if (T < 0) {
      cache.truncate(cache.length + T);
      refs.forEach((r) => r.drop(-T));
      continue;
    }
    expect(T).toBeLessThanOrEqual(cache.writeLimit());
    const positions = Int32Array.from({ length: T }, (_, t) => cache.length + t);
    for (let l = 0; l < nLayers; l++) {
      const [q, k, v] = [randn(T * H * D, rng.normal), randn(T * KV * D, rng.normal), randn(T * KV * D, rng.normal)];
      const [tq, tk, tv] = [upload(b, q, T), upload(b, k, T), upload(b, v, T)];
      rope(tq, H, positions, invFreq);
      rope(tk, KV, positions, invFreq);
      cache.write(l, tk, tv);
      const out = b.allocate([T, H * D], 'f32', 'activations');
      streamingAttention(tq, cache.layer(l), { nHeads: H, nKVHeads: KV, headDim: D, scale: 1 / Math.sqrt(D), startPos: cache.length }, out);
      const got = (await b.read(out)) as Float32Array;
      for (let t = 0; t < T; t++) {
        refs[l].add({ key: Float64Array.from(k.subarray(t * KV * D, (t + 1) * KV * D)), value: Float64Array.from(v.subarray(t * KV * D, (t + 1) * KV * D)) });
        const want = keptAttention(q.subarray(t * H * D, (t + 1) * H * D), refs[l].all, H, KV, D, invFreq);
        for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[t * H * D + i] - want[i]));
      }
      for (const x of [tq, tk, tv, out]) x.dispose();
    }
    cache.commit(T);
    expect(cache.kept).toBe(refs[0].all.length);
  }
  cache.dispose();
  return worst;
}

describe(`StreamingKVCache attention against dense f64 attention over the kept tokens (seed ${rng.seed})`, () => {
  for (const [name, b] of BACKENDS) {
    describe.skipIf(!b)(name, () => {
      it('sinks + window, across the eviction boundary and many times round the ring', async () => {
        // Prefill in chunks while it fills (3 + 4 + 2 of 3 + 7 slots), then one token at a time.
        const plan = [3, 4, 2, 1, ...Array<number>(40).fill(1)];
        expect(await check(b!, 3, 7, plan)).toBeLessThan(2e-5);
      });

      it('window only (no sinks), and a single sink', async () => {
        expect(await check(b!, 0, 5, [4, 1, ...Array<number>(17).fill(1)])).toBeLessThan(2e-5);
        expect(await check(b!, 1, 6, [7, ...Array<number>(17).fill(1)])).toBeLessThan(2e-5);
      });

      it("over core's default f16 cache, within f16 rounding of the keys and values", async () => {
        expect(await check(b!, 3, 7, [3, 4, 2, ...Array<number>(30).fill(1)], 'f16')).toBeLessThan(5e-3);
      });

      it('rolls back inside the window, before and after it wraps, and keeps going', async () => {
        // Rollbacks while filling, right after wrapping (the freed slots are holes to compact) and into the sinks.
        const plan = [2, 3, -4, 3, 2, -2, 4, 1, 1, -3, 1, ...Array<number>(12).fill(1), -4, 1, 1, -4, 2, 1, 1, 1, 1];
        expect(await check(b!, 2, 6, plan)).toBeLessThan(2e-5);
      });

      it('a rollback brings back the tokens its dropped ones evicted, as far as the rollback slots reach', async () => {
        // Speculative steps on a full window (write 4, keep 1..4), then rollbacks deeper than the 3 rollback slots.
        const step = (keep: number) => [1, 1, 1, 1, ...(keep < 4 ? [keep - 4] : [])];
        const plan = [8, ...step(1), ...step(2), ...step(4), ...step(3), 1, 1, -2, 1, 1, 1, 1, 1, -5, 1, 1, 1, ...step(1), -1, 1];
        expect(await check(b!, 2, 6, plan, 'f32', 3)).toBeLessThan(2e-5);
        expect(await check(b!, 0, 5, plan.map((t) => (t === 8 ? 5 : t)), 'f32', 3)).toBeLessThan(2e-5);
      });
    });
  }
});

describe('StreamingKVCache bookkeeping', () => {
  const b = new CpuBackend();
  const rows = (n: number) => upload(b, randn(n * KV * D, rng.normal), n);

  it('holds sinks + window slots allocated once, whatever the stream length', () => {
    const before = b.memory.snapshot().current.kv;
    const cache = streamingCache(b, 2, 4, 9);
    expect(cache.capacity).toBe(13);
    expect(cache.unbounded).toBe(true);
    // Slots underneath, plus the sinks' copy and scratch (f32).
    expect(cache.bytes).toBe(2 * 2 * 13 * KV * D * 4 + (2 * 2 * 4 + 4) * KV * D * 4);
    expect(b.memory.snapshot().current.kv - before).toBe(cache.bytes);
    for (let n = 0; n < 100; n++) {
      const T = Math.min(cache.writeLimit(), 5);
      for (let l = 0; l < 2; l++) cache.write(l, rows(T), rows(T));
      cache.commit(T);
    }
    expect(cache.kept).toBe(13);
    expect(cache.evicted).toBe(cache.length - 13);
    expect(b.memory.snapshot().current.kv - before).toBe(cache.bytes);
    cache.dispose();
    expect(b.memory.snapshot().current.kv).toBe(before);
  });

  it('refuses a chunk that would evict what its own rows see, and a rollback past the window', () => {
    const cache = streamingCache(b, 1, 2, 4);
    cache.write(0, rows(6), rows(6));
    cache.commit(6);
    expect(cache.writeLimit()).toBe(1);
    expect(() => cache.write(0, rows(2), rows(2))).toThrow(/a write of 2 tokens would evict tokens its own rows attend to; write at most writeLimit\(\) = 1/);
    cache.write(0, rows(1), rows(1));
    cache.commit(1);
    expect(() => cache.truncate(2)).toThrow(/cannot roll the streaming KV cache back 5 tokens: only the last 4 are still in the window \(1 were evicted\)/);
    cache.truncate(4);
    expect(cache.kept).toBe(3);
    expect(cache.writeLimit()).toBe(3);
  });

  it('says what is wrong with its options and with the cache underneath', () => {
    const inner = new DenseKVCache({ backend: b, nLayers: 1, nKVHeads: KV, headDim: D, capacity: 8 });
    const ctx = { backend: b, kernels: b.kernels, config };
    expect(() => new StreamingKVCache(inner, ctx, { sinks: 4, window: 5 })).toThrow(/has 8 slots, fewer than sinks \+ window \+ rollback = 25/);
    expect(() => new StreamingKVCache(inner, ctx, { sinks: -1, window: 5 })).toThrow(/sinks must be a non-negative integer, got -1/);
    expect(() => new StreamingKVCache(inner, ctx, { window: 0 })).toThrow(/window must be a positive integer/);
    const appendOnly = Object.assign(Object.create(inner) as KVCache, { writeSlots: undefined, kind: 'condensed' });
    expect(() => new StreamingKVCache(inner, ctx, { window: 4, rollback: 1.5 })).toThrow(/rollback must be a non-negative integer \(evicted tokens a rollback can restore\), got 1.5/);
    expect(() => new StreamingKVCache(appendOnly, ctx, { window: 4 })).toThrow(/the 'condensed' KV cache it would wrap cannot be written out of order/);
    const unmovable = Object.assign(Object.create(inner) as KVCache, { moveSlot: undefined, kind: 'paged' });
    expect(() => new StreamingKVCache(unmovable, ctx, { window: 4, rollback: 2 })).toThrow(/the 'paged' KV cache it would wrap cannot move slots \(moveSlot\), which rollback needs; use rollback: 0/);
    const mistral = parseConfig({ ...TINY_CONFIG, model_type: 'mistral', architectures: ['MistralForCausalLM'], sliding_window: 4 });
    expect(() => new StreamingKVCache(inner, { ...ctx, config: mistral }, { sinks: 2, window: 6, rollback: 0 })).toThrow(/window 6 exceeds the model's sliding window of 4 tokens/);
  });
});
