import { CpuBackend, DenseKVCache, type Backend, type KVCache, type Tensor } from '@lithe/core';
import { describe, expect, it } from 'vitest';
import { freshRng, randn } from '@lithe/core/testing';
import { kvQuantFormat, quantizedKVBytes } from './format.js';
import { QuantizedKVCache } from './quantized-kv-cache.js';
import { dequantizeRow, rowScale } from './quantize.js';

const rng = freshRng();
const backend = new CpuBackend();
const FORMATS = [8, 4].flatMap((bits) => (['asymmetric', 'symmetric'] as const).map((mode) => kvQuantFormat({ bits: bits as 8 | 4, mode })));
const spec = { backend, nLayers: 2, nKVHeads: 2, headDim: 4, capacity: 10, dtype: 'f32' as const };
const W = spec.nKVHeads * spec.headDim;
const rows = (n: number) => backend.upload(new Uint8Array(randn(n * W, rng.normal).buffer), [n, W], 'f32', 'other');

/** Dequantized keys (or values) of one layer, [length, W]. */
function dequantized(cache: QuantizedKVCache, layer: number, which: 'key' | 'value'): { x: Float32Array; halfStep: Float32Array } {
  const l = cache.layer(layer);
  const { format, nKVHeads: H, headDim: D } = l;
  const codes = (which === 'key' ? l.keyCodes : l.valueCodes).handle as Uint8Array | Int8Array;
  const params = (which === 'key' ? l.keyParams : l.valueParams).handle as Uint16Array;
  const x = new Float32Array(l.length * H * D);
  const halfStep = new Float32Array(x.length);
  for (let t = 0; t < l.length; t++) {
    for (let h = 0; h < H; h++) {
      const po = (t * H + h) * format.paramsPerHead;
      dequantizeRow(format, codes, ((t * H + h) * D * format.bits) / 8, params, po, D, x, (t * H + h) * D);
      halfStep.fill(rowScale(params, po) / 2 + 1e-6, (t * H + h) * D, (t * H + h + 1) * D);
    }
  }
  return { x, halfStep };
}

function expectClose(dense: KVCache, q: QuantizedKVCache): void {
  expect(q.length).toBe(dense.length);
  for (let l = 0; l < q.nLayers; l++) {
    expect(q.layer(l).length).toBe(dense.layer(l).length);
    for (const which of ['key', 'value'] as const) {
      const ref = (which === 'key' ? dense.layer(l).keys! : dense.layer(l).values!).handle as Float32Array;
      const { x, halfStep } = dequantized(q, l, which);
      for (let i = 0; i < x.length; i++) if (!(Math.abs(x[i] - ref[i]) <= halfStep[i])) throw new Error(`layer ${l} ${which} ${i}: ${x[i]} vs ${ref[i]}`);
    }
  }
}

describe(`QuantizedKVCache (seed ${rng.seed})`, () => {
  for (const format of FORMATS) {
    describe(format.kind, () => {
      it('is allocated once, in quantized form, counted as KV exactly to the byte, and freed on dispose', () => {
        const before = backend.memory.snapshot();
        backend.memory.resetPeak();
        const cache = new QuantizedKVCache(spec, format);
        // Per layer: 2 (K, V) x capacity x heads x (codes + f16 params).
        const perHead = (spec.headDim * format.bits) / 8 + 2 * format.paramsPerHead;
        expect(cache.bytes).toBe(2 * 2 * 10 * 2 * perHead);
        expect(cache.bytes).toBe(quantizedKVBytes(spec, format));
        const after = backend.memory.snapshot();
        expect(after.current.kv - before.current.kv).toBe(cache.bytes);
        // No full-precision intermediate: the peak rose by the cache's own bytes and nothing more.
        expect(after.peakTotal - before.currentTotal).toBe(cache.bytes);
        cache.dispose();
        expect(backend.memory.snapshot().current.kv).toBe(before.current.kv);
      });

      it('appends, commits and truncates (rollback) like the dense cache', () => {
        const dense = new DenseKVCache(spec);
        const q = new QuantizedKVCache(spec, format);
        const both = (fn: (c: KVCache) => void) => [dense, q].forEach(fn);
        const [k1, v1, k2, v2, k3, v3] = [rows(3), rows(3), rows(2), rows(2), rows(4), rows(4)];
        both((c) => [0, 1].forEach((l) => c.write(l, k1, v1)));
        both((c) => c.commit(3));
        both((c) => [0, 1].forEach((l) => c.write(l, k2, v2)));
        both((c) => c.commit(2));
        expect(q.length).toBe(5);
        expectClose(dense, q);
        both((c) => c.truncate(3));
        expect(q.layer(1).length).toBe(3);
        both((c) => [0, 1].forEach((l) => c.write(l, k3, v3)));
        both((c) => c.commit(4));
        expectClose(dense, q);
        expect(() => q.truncate(8)).toThrow(/cannot truncate the KV cache to 8 tokens: it holds 7/);
        both((c) => c.reset());
        expect(q.length).toBe(0);
        expect(q.layer(0).length).toBe(0);
        dense.dispose();
        q.dispose();
      });

      it('writes slots out of order (a ring buffer over it) like the dense cache', () => {
        const dense = new DenseKVCache(spec);
        const q = new QuantizedKVCache(spec, format);
        const [k1, v1, k2, v2] = [rows(4), rows(4), rows(3), rows(3)];
        for (const c of [dense, q]) {
          [0, 1].forEach((l) => c.writeSlots!(l, 0, k1, v1));
          [0, 1].forEach((l) => c.writeSlots!(l, 1, k2, v2));
        }
        expect(q.length).toBe(0);
        expect(q.layer(1).length).toBe(4);
        expectClose(dense, q);
        for (const c of [dense, q]) [0, 1].forEach((l) => c.moveSlot!(l, 3, 0));
        expectClose(dense, q);
        expect(() => q.writeSlots(0, 8, k2, v2)).toThrow(/slots \[8, 11\) are outside its 10 slots/);
        dense.dispose();
        q.dispose();
      });

      it('refuses to overflow its size and to commit a layer that was not written, with the dense cache messages', () => {
        const dense = new DenseKVCache(spec);
        const q = new QuantizedKVCache(spec, format);
        const k = rows(8);
        for (const c of [dense, q]) {
          for (let l = 0; l < 2; l++) c.write(l, k, k);
          c.commit(8);
        }
        const overflow = (c: KVCache) => () => c.write(0, rows(3), rows(3));
        const message = /KV cache is full: 8 \+ 3 tokens exceed its size of 10/;
        expect(overflow(dense)).toThrow(message);
        expect(overflow(q)).toThrow(message);
        q.write(0, rows(2), rows(2));
        expect(() => q.commit(2)).toThrow(/commit of 2 tokens, but a layer holds 0/);
        expect(() => new QuantizedKVCache({ ...spec, capacity: 0 }, format)).toThrow(/positive integer/);
        dense.dispose();
        q.dispose();
      });
    });
  }

  it('stores int8 at <= 0.53x and int4 at <= 0.28x of an f16 cache (scales and zeros included)', () => {
    const ratio = (bits: 8 | 4, mode: 'asymmetric' | 'symmetric', headDim: number) => {
      const shape = { nLayers: 22, nKVHeads: 4, headDim, capacity: 2048 };
      return quantizedKVBytes(shape, kvQuantFormat({ bits, mode })) / (2 * 22 * 2048 * 4 * headDim * 2);
    };
    // head_dim 64 (TinyLlama): int8 = (64 + 4) / 128, int4 = (32 + 4) / 128.
    expect(ratio(8, 'asymmetric', 64)).toBe(68 / 128);
    expect(ratio(4, 'asymmetric', 64)).toBe(36 / 128);
    expect(ratio(8, 'symmetric', 64)).toBe(66 / 128);
    expect(ratio(4, 'symmetric', 64)).toBe(34 / 128);
    // head_dim 128 (Llama 2 / 3 7-8B).
    expect(ratio(8, 'asymmetric', 128)).toBeLessThanOrEqual(0.53);
    expect(ratio(4, 'asymmetric', 128)).toBeLessThanOrEqual(0.28);
  });

  it('says which backend it cannot run on', () => {
    const fake = { name: 'metal' } as Backend;
    expect(() => new QuantizedKVCache({ ...spec, backend: fake }, kvQuantFormat({ bits: 8 }))).toThrow(/'metal' backend has no quantized KV kernels/);
  });
});

describe(`QuantizedKVCache.copyPrefix (seed ${rng.seed})`, () => {
  it.each(FORMATS.map((f) => [f.kind, f] as const))('%s: copies the first tokens\' codes and parameters bit for bit, then appends like the source', (_kind, format) => {
    const src = new QuantizedKVCache(spec, format);
    const dst = new QuantizedKVCache(spec, format);
    for (let l = 0; l < spec.nLayers; l++) src.write(l, rows(7), rows(7));
    src.commit(7);
    expect(dst.copyPrefix(src, 5)).toBe(true);
    expect(dst.length).toBe(5);
    // The same next tokens written to both: every byte of the first 6 rows must agree.
    src.truncate(5);
    const [k, v] = [rows(1), rows(1)];
    for (const c of [src, dst]) {
      for (let l = 0; l < spec.nLayers; l++) c.write(l, k, v);
      c.commit(1);
    }
    for (let l = 0; l < spec.nLayers; l++) {
      const [a, b] = [src.layer(l).tensors, dst.layer(l).tensors];
      a.forEach((t, j) => {
        const bytes = (x: Tensor) => new Uint8Array((x.handle as ArrayBufferView).buffer, (x.handle as ArrayBufferView).byteOffset, 6 * t.byteLength / t.shape[0]);
        expect(Array.from(bytes(b[j]))).toEqual(Array.from(bytes(t)));
      });
    }
  });

  it('refuses a cache of another kind or shape (the prefix is prefilled instead)', () => {
    const [int8, int4] = [kvQuantFormat({ bits: 8 }), kvQuantFormat({ bits: 4 })];
    const src = new QuantizedKVCache(spec, int8);
    for (let l = 0; l < spec.nLayers; l++) src.write(l, rows(3), rows(3));
    src.commit(3);
    expect(new QuantizedKVCache(spec, int4).copyPrefix(src, 2)).toBe(false);
    expect(new QuantizedKVCache({ ...spec, nLayers: 3 }, int8).copyPrefix(src, 2)).toBe(false);
    expect(new QuantizedKVCache(spec, int8).copyPrefix(new DenseKVCache(spec), 0)).toBe(false);
    expect(() => new QuantizedKVCache(spec, int8).copyPrefix(src, 4)).toThrow(/source holds 3/);
  });
});
