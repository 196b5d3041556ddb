/**
 * What the flash kernels' tests share (test support, not part of the package's API): the shape of
 * an attention call, its label, the kv-quant cache kinds, the WebGPU backend or a skip, and the
 * element-wise comparison with the worst element named.
 */
import { expect } from 'vitest';
import { DenseKVCache, WebGpuBackend, type AttentionParams, type Backend, type KVDType, type Tensor } from '@lithe/core';
import type { KvQuantOptions } from '@lithe/kv-quant';

/** One attention call: T query rows from position startPos, its heads, window and diagonal. */
export interface AttentionCase {
  T: number;
  nHeads: number;
  nKV: number;
  headDim: number;
  startPos: number;
  window?: number;
  noDiagonal?: boolean;
}

export const caseLabel = (c: AttentionCase) =>
  `T=${c.T} heads=${c.nHeads}/${c.nKV} d=${c.headDim} start=${c.startPos}${c.window ? ` window=${c.window}` : ''}${c.noDiagonal ? ' noDiagonal' : ''}`;

/** kv-quant's four cache kinds. */
export const QUANT_KINDS: [string, KvQuantOptions][] = [
  ['int8-asym', { bits: 8 }],
  ['int8-sym', { bits: 8, mode: 'symmetric' }],
  ['int4-asym', { bits: 4 }],
  ['int4-sym', { bits: 4, mode: 'symmetric' }],
];

/** The case's attention parameters (scale 1/√headDim). */
export const attentionParams = (c: AttentionCase): AttentionParams => ({ nHeads: c.nHeads, nKVHeads: c.nKV, headDim: c.headDim, scale: 1 / Math.sqrt(c.headDim), startPos: c.startPos, window: c.window, noDiagonal: c.noDiagonal });

/**
 * One dense-cache call of the case on `be`: a one-layer cache of `dtype` holding the case's keys and
 * values (the cached prefix committed, this call's rows written), its queries, parameters and output.
 */
export function denseCall(be: Backend, c: AttentionCase, dtype: KVDType, data: { q: Float32Array; k: Float32Array; v: Float32Array }) {
  const kvWidth = c.nKV * c.headDim;
  const total = c.startPos + c.T - (c.noDiagonal ? 1 : 0);
  const cache = new DenseKVCache({ backend: be, nLayers: 1, nKVHeads: c.nKV, headDim: c.headDim, capacity: c.startPos + c.T + 2, dtype });
  const rows = (from: number, to: number) => [uploadF32(be, data.k.subarray(from * kvWidth, to * kvWidth), [to - from, kvWidth]), uploadF32(be, data.v.subarray(from * kvWidth, to * kvWidth), [to - from, kvWidth])] as const;
  if (c.startPos > 0) {
    cache.write(0, ...rows(0, c.startPos));
    cache.commit(c.startPos);
  }
  if (total > c.startPos) cache.write(0, ...rows(c.startPos, total));
  const q = uploadF32(be, data.q, [c.T, c.nHeads * c.headDim]);
  return { q, cache, params: attentionParams(c), out: be.allocate([c.T, c.nHeads * c.headDim], 'f32', 'other') };
}

export const uploadF32 = (b: Backend, data: Float32Array, shape: number[]) => b.upload(new Uint8Array(data.slice().buffer), shape, 'f32', 'other');

/** Dawn's WebGPU backend (a software adapter where there is no GPU), or null to skip; CI must have one. */
export async function webGpuOrSkip(): Promise<WebGpuBackend | null> {
  try {
    return await WebGpuBackend.create();
  } catch (e) {
    if (process.env.CI) throw e;
    console.warn(`skipping WebGPU tests: ${(e as Error).message}`);
    return null;
  }
}

/** max |actual − expected| ≤ tol, naming the worst element and the seed on failure. */
export function expectClose(actual: ArrayLike<number> | Tensor, expected: ArrayLike<number> | Tensor, tol: number, seed: number): void {
  const [a, e] = [values(actual), values(expected)];
  expect(a.length).toBe(e.length);
  let worst = 0;
  let at = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - e[i]);
    if (!(d <= worst)) [worst, at] = [d, i];
  }
  expect(worst, `seed ${seed}: element ${at}: ${a[at]} vs ${e[at]}`).toBeLessThanOrEqual(tol);
}

const values = (x: ArrayLike<number> | Tensor): ArrayLike<number> => ('handle' in x ? (x.handle as Float32Array) : x);
