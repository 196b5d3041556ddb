import { describe, expect, it } from 'vitest';
import { DenseKVCache } from '../../kv-cache/dense-kv-cache.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../tensor/half.js';
import type { Tensor } from '../../tensor/tensor.js';
import { freshRng, maxAbsDiff, randn } from '../../testing/random.js';
import { CpuBackend } from './cpu-backend.js';

const cpu = new CpuBackend();
const k = <K extends Parameters<typeof cpu.kernels.get>[1]>(op: K, variant?: string) => cpu.kernels.get('cpu', op, variant);
const rng = freshRng();
const f32 = (data: Float32Array, shape: number[]) => cpu.upload(new Uint8Array(data.buffer.slice(0)), shape, 'f32', 'other');
const out = (shape: number[]) => cpu.allocate(shape, 'f32', 'other');
const arr = (t: Tensor) => t.handle as Float32Array;

describe(`CPU kernels against f64 references (seed ${rng.seed})`, () => {
  it.each([1, 2, 5])('linear on %i rows: odd sizes, with and without bias, f32/f16/bf16 weights', (T) => {
    const [inF, outF] = [37, 23];
    const x = randn(T * inF, rng.normal);
    const w = randn(outF * inF, rng.normal);
    const b = randn(outF, rng.normal);
    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      const enc = dtype === 'f16' ? f32ToF16 : f32ToBf16;
      const dec = dtype === 'f32' ? (v: number) => v : dtype === 'f16' ? (h: number) => f16ToF32(h) : bf16ToF32;
      const stored = dtype === 'f32' ? w : Uint16Array.from(w, enc);
      const wt = cpu.upload(new Uint8Array(stored.buffer.slice(0)), [outF, inF], dtype, 'other');
      for (const bias of [null, b]) {
        const y = out([T, outF]);
        k('linear', dtype)(f32(x, [T, inF]), wt, bias && f32(bias, [outF]), y);
        const ref = new Float64Array(T * outF);
        for (let t = 0; t < T; t++)
          for (let o = 0; o < outF; o++) {
            let s = bias ? bias[o] : 0;
            for (let i = 0; i < inF; i++) s += x[t * inF + i] * dec(stored[o * inF + i]);
            ref[t * outF + o] = s;
          }
        expect(maxAbsDiff(arr(y), ref)).toBeLessThan(1e-4);
      }
    }
  });

  it('embedding gathers rows of f32, f16 and bf16 tables and rejects ids outside the vocabulary', () => {
    const [V, D] = [11, 6];
    const table = randn(V * D, rng.normal);
    const ids = Int32Array.from([3, 0, 10, 3]);
    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      const stored = dtype === 'f32' ? table : Uint16Array.from(table, dtype === 'f16' ? f32ToF16 : f32ToBf16);
      const t = cpu.upload(new Uint8Array(stored.buffer.slice(0)), [V, D], dtype, 'other');
      const y = out([4, D]);
      k('embedding', dtype)(t, ids, y);
      const tol = dtype === 'f32' ? 0 : dtype === 'f16' ? 2e-3 : 2e-2;
      ids.forEach((id, r) => expect(maxAbsDiff(arr(y).subarray(r * D, (r + 1) * D), table.subarray(id * D, (id + 1) * D))).toBeLessThanOrEqual(tol * 4));
      expect(() => k('embedding', dtype)(t, Int32Array.from([V]), out([1, D]))).toThrow(/outside the vocabulary/);
    }
  });

  it('rmsNorm', () => {
    const [R, D] = [3, 33];
    const x = randn(R * D, rng.normal, 3);
    const w = randn(D, rng.normal);
    const y = out([R, D]);
    k('rmsNorm')(f32(x, [R, D]), f32(w, [D]), 1e-5, y);
    const ref = new Float64Array(R * D);
    for (let r = 0; r < R; r++) {
      let ss = 0;
      for (let i = 0; i < D; i++) ss += x[r * D + i] ** 2;
      const inv = 1 / Math.sqrt(ss / D + 1e-5);
      for (let i = 0; i < D; i++) ref[r * D + i] = x[r * D + i] * inv * w[i];
    }
    expect(maxAbsDiff(arr(y), ref)).toBeLessThan(1e-5);
  });

  it('rope rotates each (i, i + d/2) pair by position × frequency', () => {
    const [T, H, hd] = [4, 3, 8];
    const x = randn(T * H * hd, rng.normal);
    const positions = Int32Array.from([0, 1, 7, 130]);
    const inv = Float32Array.from({ length: hd / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / hd));
    const t = f32(x, [T, H * hd]);
    k('rope')(t, H, positions, inv);
    const ref = new Float64Array(x.length);
    for (let r = 0; r < T; r++)
      for (let h = 0; h < H; h++)
        for (let i = 0; i < hd / 2; i++) {
          const a = x[(r * H + h) * hd + i];
          const b = x[(r * H + h) * hd + i + hd / 2];
          const th = positions[r] * inv[i];
          ref[(r * H + h) * hd + i] = a * Math.cos(th) - b * Math.sin(th);
          ref[(r * H + h) * hd + i + hd / 2] = b * Math.cos(th) + a * Math.sin(th);
        }
    expect(maxAbsDiff(arr(t), ref)).toBeLessThan(1e-4);
  });

  it('attention with a masked diagonal (LCKV no_diag): earlier positions only, zeros for a row with none', () => {
    const [nH, nKV, hd] = [4, 2, 6];
    const w = nKV * hd;
    const scale = 1 / Math.sqrt(hd);
    for (const [past, T, window] of [
      [0, 5, undefined],
      [7, 3, undefined],
      [7, 4, 3],
      [3, 1, 1],
    ] as const) {
      // The cache need only hold the rows before the last query: its own row may be missing.
      const S = past + T - 1;
      const keys = randn(S * w, rng.normal);
      const values = randn(S * w, rng.normal);
      const q = randn(T * nH * hd, rng.normal);
      const cache = new DenseKVCache({ backend: cpu, nLayers: 1, nKVHeads: nKV, headDim: hd, capacity: 16, dtype: 'f32' });
      if (S > 0) cache.write(0, f32(keys, [S, w]), f32(values, [S, w]));
      const y = out([T, nH * hd]);
      k('attention', 'dense')(f32(q, [T, nH * hd]), cache.layer(0), { nHeads: nH, nKVHeads: nKV, headDim: hd, scale, startPos: past, window, noDiagonal: true }, y);
      const ref = new Float64Array(T * nH * hd);
      for (let t = 0; t < T; t++)
        for (let h = 0; h < nH; h++) {
          const g = Math.floor(h / (nH / nKV));
          const vis = [...Array(S).keys()].filter((j) => j < past + t && (window === undefined || j > past + t - window));
          if (vis.length === 0) continue; // nothing to attend to: zeros
          const s = vis.map((j) => {
            let d = 0;
            for (let i = 0; i < hd; i++) d += q[(t * nH + h) * hd + i] * keys[j * w + g * hd + i];
            return d * scale;
          });
          const m = Math.max(...s);
          const e = s.map((v) => Math.exp(v - m));
          const z = e.reduce((a, b) => a + b, 0);
          for (let i = 0; i < hd; i++) ref[(t * nH + h) * hd + i] = e.reduce((acc, p, n) => acc + (p / z) * values[vis[n] * w + g * hd + i], 0);
        }
      expect(maxAbsDiff(arr(y), ref)).toBeLessThan(1e-5);
      if (past === 0) expect(Array.from(arr(y).subarray(0, nH * hd)).every((v) => v === 0)).toBe(true);
    }
  });

  it('attention: causal GQA over a cache with earlier tokens, with and without a sliding window', () => {
    const [nH, nKV, hd, past, T] = [6, 2, 8, 5, 4];
    const S = past + T;
    const keys = randn(S * nKV * hd, rng.normal);
    const values = randn(S * nKV * hd, rng.normal);
    const q = randn(T * nH * hd, rng.normal);
    const cache = new DenseKVCache({ backend: cpu, nLayers: 1, nKVHeads: nKV, headDim: hd, capacity: 16, dtype: 'f32' });
    const w = nKV * hd;
    cache.write(0, f32(keys.slice(0, past * w), [past, w]), f32(values.slice(0, past * w), [past, w]));
    cache.commit(past);
    cache.write(0, f32(keys.slice(past * w), [T, w]), f32(values.slice(past * w), [T, w]));
    for (const window of [undefined, 3]) {
      const y = out([T, nH * hd]);
      const scale = 1 / Math.sqrt(hd);
      k('attention', 'dense')(f32(q, [T, nH * hd]), cache.layer(0), { nHeads: nH, nKVHeads: nKV, headDim: hd, scale, startPos: past, window }, y);
      const ref = new Float64Array(T * nH * hd);
      for (let t = 0; t < T; t++)
        for (let h = 0; h < nH; h++) {
          const g = Math.floor(h / (nH / nKV));
          const s: number[] = [];
          for (let j = 0; j < S; j++) {
            const visible = j <= past + t && (window === undefined || j > past + t - window);
            let d = 0;
            for (let i = 0; i < hd; i++) d += q[(t * nH + h) * hd + i] * keys[j * w + g * hd + i];
            s.push(visible ? d * scale : -Infinity);
          }
          const m = Math.max(...s);
          const e = s.map((v) => Math.exp(v - m));
          const z = e.reduce((a, b) => a + b, 0);
          for (let i = 0; i < hd; i++) ref[(t * nH + h) * hd + i] = e.reduce((acc, p, j) => acc + (p / z) * values[j * w + g * hd + i], 0);
        }
      expect(maxAbsDiff(arr(y), ref)).toBeLessThan(1e-5);
    }
  });

  it('swiglu, add, softmax, argmax', () => {
    const n = 3 * 17;
    const a = randn(n, rng.normal, 4);
    const b = randn(n, rng.normal);
    const y = out([3, 17]);
    k('swiglu')(f32(a, [3, 17]), f32(b, [3, 17]), y);
    expect(maxAbsDiff(arr(y), Array.from(a, (g, i) => (g / (1 + Math.exp(-g))) * b[i]))).toBeLessThan(1e-5);
    k('add')(f32(a, [3, 17]), f32(b, [3, 17]), y);
    expect(maxAbsDiff(arr(y), Array.from(a, (v, i) => v + b[i]))).toBeLessThan(1e-6);
    k('softmax')(f32(a, [3, 17]), y);
    for (let r = 0; r < 3; r++) {
      const row = Array.from(a.subarray(r * 17, (r + 1) * 17));
      const m = Math.max(...row);
      const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
      expect(maxAbsDiff(arr(y).subarray(r * 17, (r + 1) * 17), row.map((v) => Math.exp(v - m) / z))).toBeLessThan(1e-6);
    }
    const idx = cpu.allocate([3], 'i32', 'other');
    k('argmax')(f32(a, [3, 17]), idx);
    for (let r = 0; r < 3; r++) {
      const row = Array.from(a.subarray(r * 17, (r + 1) * 17));
      expect((idx.handle as Int32Array)[r]).toBe(row.indexOf(Math.max(...row)));
    }
    // A NaN anywhere in a row (first, middle, last) marks the row -1.
    for (const at of [0, 8, 16]) {
      const x = a.slice(0, 17);
      x[at] = NaN;
      const one = cpu.allocate([1], 'i32', 'other');
      k('argmax')(f32(x, [1, 17]), one);
      expect((one.handle as Int32Array)[0]).toBe(-1);
    }
  });
});
