import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../backends/cpu/cpu-backend.js';
import { freshRng, randn } from '../testing/random.js';
import { DenseKVCache } from './dense-kv-cache.js';

const rng = freshRng();
const backend = new CpuBackend();
const spec = { backend, nLayers: 2, nKVHeads: 2, headDim: 4, capacity: 10 };
const rows = (n: number) => backend.upload(new Uint8Array(randn(n * 8, rng.normal).buffer), [n, 8], 'f32', 'other');

describe(`DenseKVCache (seed ${rng.seed})`, () => {
  it('is allocated up front, counted as KV, and freed on dispose', () => {
    const before = backend.memory.snapshot().current.kv;
    const cache = new DenseKVCache(spec);
    expect(cache.bytes).toBe(2 * 2 * 10 * 8 * 4);
    expect(backend.memory.snapshot().current.kv - before).toBe(cache.bytes);
    cache.dispose();
    expect(backend.memory.snapshot().current.kv).toBe(before);
  });

  it('appends per layer, commits, and truncates back for a rollback', () => {
    const cache = new DenseKVCache(spec);
    const [k1, v1, k2, v2] = [rows(3), rows(3), rows(2), rows(2)];
    for (let l = 0; l < 2; l++) cache.write(l, k1, v1);
    cache.commit(3);
    for (let l = 0; l < 2; l++) cache.write(l, k2, v2);
    cache.commit(2);
    expect(cache.length).toBe(5);
    const keys = cache.layer(1).keys!.handle as Float32Array;
    expect(keys.subarray(24, 40)).toEqual(k2.handle);
    cache.truncate(3);
    expect(cache.length).toBe(3);
    expect(cache.layer(0).length).toBe(3);
    const k3 = rows(1);
    for (let l = 0; l < 2; l++) cache.write(l, k3, k3);
    cache.commit(1);
    expect(keys.subarray(24, 32)).toEqual(k3.handle);
    expect(() => cache.truncate(7)).toThrow(/holds 4/);
  });

  it('refuses to overflow its size and to commit a layer that was not written', () => {
    const cache = new DenseKVCache(spec);
    const k = rows(8);
    for (let l = 0; l < 2; l++) cache.write(l, k, k);
    cache.commit(8);
    expect(() => cache.write(0, rows(3), rows(3))).toThrow(/KV cache is full: 8 \+ 3 tokens exceed its size of 10/);
    cache.write(0, rows(1), rows(1));
    expect(() => cache.commit(1)).toThrow(/commit/);
    expect(() => new DenseKVCache({ ...spec, capacity: 0 })).toThrow(/positive integer/);
  });
});
