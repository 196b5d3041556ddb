import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../backends/cpu/cpu-backend.js';
import { F16_TABLE, f32ToF16 } from '../tensor/half.js';
import { freshRng, maxAbsDiff, randn } from '../testing/random.js';
import { DenseKVCache } from './dense-kv-cache.js';

const rng = freshRng();
const backend = new CpuBackend();
const spec = { backend, nLayers: 2, nKVHeads: 2, headDim: 4, capacity: 10, dtype: 'f32' as const };
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

  it('copyPrefix: holds the first n tokens of another cache of its kind (f32 and f16), then appends after them', () => {
    for (const dtype of ['f32', 'f16'] as const) {
      const [src, dst] = [new DenseKVCache({ ...spec, dtype }), new DenseKVCache({ ...spec, dtype })];
      const [k, v, k2] = [rows(7), rows(7), rows(1)];
      for (let l = 0; l < 2; l++) src.write(l, k, v);
      src.commit(7);
      expect(dst.copyPrefix(src, 5)).toBe(true);
      expect(dst.length).toBe(5);
      const bytes = dtype === 'f32' ? 4 : 2;
      for (let l = 0; l < 2; l++) {
        const read = (c: DenseKVCache, what: 'keys' | 'values') => new Uint8Array((c.layer(l)[what]!.handle as ArrayBufferView).buffer.slice(0), 0, 5 * 8 * bytes);
        expect(read(dst, 'keys')).toEqual(read(src, 'keys'));
        expect(read(dst, 'values')).toEqual(read(src, 'values'));
        expect(dst.layer(l).length).toBe(5);
      }
      for (let l = 0; l < 2; l++) dst.write(l, k2, k2);
      dst.commit(1);
      expect(dst.length).toBe(6);
      expect(() => dst.copyPrefix(src, 8)).toThrow(/source holds 7/);
      expect(new DenseKVCache({ ...spec, dtype: dtype === 'f32' ? 'f16' : 'f32' }).copyPrefix(src, 3)).toBe(false);
    }
  });

  it('writes slots outside the append order without committing them', () => {
    const cache = new DenseKVCache(spec);
    const [k, v] = [rows(2), rows(2)];
    cache.writeSlots(1, 7, k, v);
    expect(cache.length).toBe(0);
    expect(cache.layer(1).length).toBe(9);
    expect(cache.layer(0).length).toBe(0);
    expect((cache.layer(1).keys!.handle as Float32Array).subarray(56, 72)).toEqual(k.handle);
    expect((cache.layer(1).values!.handle as Float32Array).subarray(56, 72)).toEqual(v.handle);
    expect(() => cache.writeSlots(0, 9, k, v)).toThrow(/outside its 10 slots/);
    cache.moveSlot(1, 8, 2);
    expect((cache.layer(1).keys!.handle as Float32Array).subarray(16, 24)).toEqual((k.handle as Float32Array).subarray(8, 16));
    expect((cache.layer(1).values!.handle as Float32Array).subarray(16, 24)).toEqual((v.handle as Float32Array).subarray(8, 16));
    expect(() => cache.moveSlot(0, 10, 0)).toThrow(/below 10/);
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

describe(`the f16 dense cache (seed ${rng.seed})`, () => {
  const attention = backend.kernels.get('cpu', 'attention', 'dense');
  const [nHeads, nKVHeads, headDim, S] = [6, 2, 34, 57];
  const width = nKVHeads * headDim;
  const upload = (a: Float32Array, rows: number, w: number) => backend.upload(new Uint8Array(a.slice().buffer), [rows, w], 'f32', 'other');

  it('is the default, holds half the bytes, and stores each value rounded to nearest even', () => {
    const cache = new DenseKVCache({ ...spec, dtype: undefined });
    expect(cache.dtype).toBe('f16');
    expect(cache.bytes).toBe(new DenseKVCache(spec).bytes / 2);
    const k = randn(3 * 8, rng.normal, 3);
    for (let l = 0; l < 2; l++) cache.write(l, upload(k, 3, 8), upload(k, 3, 8));
    expect(Array.from((cache.layer(1).keys!.handle as Uint16Array).subarray(0, 24))).toEqual(Array.from(k, f32ToF16));
    expect(() => new DenseKVCache({ ...spec, dtype: 'bf16' as never })).toThrow(/'f16' or 'f32', got 'bf16'/);
  });

  it('attention over it equals f32 attention over the rounded values, and stays within the rounding bound of the exact ones', () => {
    const keys = randn(S * width, rng.normal, 2);
    const values = randn(S * width, rng.normal, 2);
    const q = randn(3 * nHeads * headDim, rng.normal);
    const rounded = (a: Float32Array) => a.map((v) => F16_TABLE[f32ToF16(v)]);
    const run = (dtype: 'f16' | 'f32', k: Float32Array, v: Float32Array) => {
      const cache = new DenseKVCache({ backend, nLayers: 1, nKVHeads, headDim, capacity: S, dtype });
      cache.write(0, upload(k, S, width), upload(v, S, width));
      const out = backend.allocate([3, nHeads * headDim], 'f32', 'other');
      attention(upload(q, 3, nHeads * headDim), cache.layer(0), { nHeads, nKVHeads, headDim, scale: 1 / Math.sqrt(headDim), startPos: S - 3 }, out);
      return out.handle as Float32Array;
    };
    const half = run('f16', keys, values);
    expect(maxAbsDiff(half, run('f32', rounded(keys), rounded(values)))).toBeLessThan(1e-5);
    // Each stored value is off by at most 2^-11 relative. A score moves by at most
    // δ = scale · Σ|q||k| · 2^-11, so a softmax weight by a factor within e^{±2δ}, and the output by
    // at most max|v| · (e^{2δ} - 1) from the keys plus max|v| · 2^-11 from the values.
    let delta = 0;
    for (let t = 0; t < 3; t++) {
      for (let h = 0; h < nHeads; h++) {
        for (let j = 0; j < S; j++) {
          let s = 0;
          for (let d = 0; d < headDim; d++) s += Math.abs(q[(t * nHeads + h) * headDim + d] * keys[j * width + Math.floor(h / 3) * headDim + d]);
          delta = Math.max(delta, (s * 2 ** -11) / Math.sqrt(headDim));
        }
      }
    }
    const vmax = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const bound = vmax * (Math.expm1(2 * delta) + 2 ** -11);
    const err = maxAbsDiff(half, run('f32', keys, values));
    expect(err).toBeGreaterThan(0);
    expect(err).toBeLessThan(bound);
  });
});
