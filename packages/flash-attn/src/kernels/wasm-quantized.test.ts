/**
 * The wasm flash kernel on kv-quant's int8 / int4 caches (read through core's `quantized` layout,
 * dequantized in the tile) against kv-quant's own CPU kernel over the same cache, on fresh random
 * inputs: decode rows split into chunks, odd prefill blocks across key-block edges, GQA 1 / 4 / 8,
 * windows, the masked diagonal, all four kinds, one and two threads.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WasmBackend, type Backend } from '@lithe/core';
import { freshRng, randn } from '@lithe/core/testing';
import { QuantizedKVCache, attentionQuantized, kvQuantFormat, type KvQuantOptions } from '@lithe/kv-quant';
import { FlashWasm, flashUnsupported } from './wasm-attention.js';
import { attentionParams, type AttentionCase, caseLabel, expectClose, QUANT_KINDS, uploadF32 } from './attention-cases.js';

const rng = freshRng();

/** A one-layer quantized cache holding the case's keys and values, its queries, params and two outputs. */
function setup(be: Backend, c: AttentionCase, options: KvQuantOptions) {
  const kvWidth = c.nKV * c.headDim;
  const total = c.startPos + c.T - (c.noDiagonal ? 1 : 0);
  const k = randn(Math.max(total, 1) * kvWidth, rng.normal);
  const v = randn(Math.max(total, 1) * kvWidth, rng.normal);
  const cache = new QuantizedKVCache({ backend: be, nLayers: 1, nKVHeads: c.nKV, headDim: c.headDim, capacity: c.startPos + c.T + 2 }, kvQuantFormat(options));
  if (total > 0) cache.write(0, uploadF32(be, k.subarray(0, total * kvWidth), [total, kvWidth]), uploadF32(be, v.subarray(0, total * kvWidth), [total, kvWidth]));
  const q = uploadF32(be, randn(c.T * c.nHeads * c.headDim, rng.normal, 2), [c.T, c.nHeads * c.headDim]);
  const p = attentionParams(c);
  const out = () => be.allocate([c.T, c.nHeads * c.headDim], 'f32', 'other');
  return { layer: cache.layer(0), q, p, out };
}

const CASES: AttentionCase[] = [
  { T: 1, nHeads: 8, nKV: 8, headDim: 64, startPos: 0 },
  { T: 1, nHeads: 8, nKV: 2, headDim: 64, startPos: 31 },
  { T: 1, nHeads: 8, nKV: 1, headDim: 64, startPos: 32 },
  { T: 1, nHeads: 32, nKV: 4, headDim: 64, startPos: 1500 },
  { T: 1, nHeads: 4, nKV: 4, headDim: 12, startPos: 1027 },
  { T: 1, nHeads: 16, nKV: 2, headDim: 68, startPos: 777, window: 300 },
  { T: 1, nHeads: 8, nKV: 1, headDim: 64, startPos: 900, noDiagonal: true },
  { T: 5, nHeads: 4, nKV: 4, headDim: 16, startPos: 0 },
  { T: 33, nHeads: 8, nKV: 2, headDim: 64, startPos: 0 },
  { T: 70, nHeads: 8, nKV: 1, headDim: 64, startPos: 45 },
  { T: 37, nHeads: 3, nKV: 3, headDim: 20, startPos: 64 },
  { T: 50, nHeads: 8, nKV: 2, headDim: 32, startPos: 20, window: 17 },
  { T: 29, nHeads: 8, nKV: 8, headDim: 8, startPos: 0, noDiagonal: true },
  { T: 12, nHeads: 8, nKV: 2, headDim: 64, startPos: 33, window: 40, noDiagonal: true },
];

describe.each([1, 2])(`wasm flash attention on quantized caches (seed ${rng.seed}), %i thread(s)`, (threads) => {
  let wasm: WasmBackend;
  let flash: FlashWasm;
  beforeAll(async () => {
    wasm = await WasmBackend.create({ threads, minParallelWork: 0 });
    flash = await FlashWasm.load(wasm);
  });
  afterAll(() => wasm.close());

  describe.each(QUANT_KINDS)('%s', (_kind, options) => {
    it.each(CASES.map((c) => [caseLabel(c), c] as const))('%s', (_, c) => {
      const { layer, q, p, out } = setup(wasm, c, options);
      expect(flashUnsupported(layer, p)).toBeNull();
      const [ref, got] = [out(), out()];
      attentionQuantized(q, layer, p, ref);
      flash.attention(q, layer, p, got);
      expectClose(got, ref, 3e-5, rng.seed);
    });
  });

  it('random shapes and kinds, seeded per run', () => {
    for (let n = 0; n < 12; n++) {
      const nKV = 1 + Math.floor(rng.uniform() * 4);
      const group = [1, 2, 4, 8][Math.floor(rng.uniform() * 4)];
      const c: AttentionCase = {
        T: 1 + Math.floor(rng.uniform() * (n % 2 ? 3 : 60)),
        nHeads: nKV * group,
        nKV,
        headDim: 4 * (1 + Math.floor(rng.uniform() * 20)),
        startPos: Math.floor(rng.uniform() * 1200),
        window: rng.uniform() < 0.3 ? 1 + Math.floor(rng.uniform() * 500) : undefined,
        noDiagonal: rng.uniform() < 0.2,
      };
      const { layer, q, p, out } = setup(wasm, c, QUANT_KINDS[Math.floor(rng.uniform() * 4)][1]);
      const [ref, got] = [out(), out()];
      attentionQuantized(q, layer, p, ref);
      flash.attention(q, layer, p, got);
      expectClose(got, ref, 3e-5, rng.seed);
    }
  });
});
