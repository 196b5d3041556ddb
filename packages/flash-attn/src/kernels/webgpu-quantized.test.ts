/**
 * The WebGPU flash kernel on kv-quant's int8 / int4 caches (read through core's `quantized` layout,
 * dequantized as the tile loads each block) against kv-quant's CPU kernel over the same cache, on
 * Dawn (a software adapter where there is no GPU) with fresh random inputs: decode rows split into
 * chunks, odd prefill blocks across key-block edges, GQA 1 / 4 / 8, windows, the masked diagonal,
 * all four kinds. Where kv-quant's WebGPU cache takes the shape, the GPU quantizes it and the CPU
 * reference reads its bytes back; elsewhere (head dims that are not multiples of 8, an odd count of
 * symmetric scales) the CPU-quantized bytes are uploaded into a layer of the same layout.
 */
import { describe, expect, it } from 'vitest';
import { CpuBackend, WebGpuBackend, type Backend, type KVCacheLayer, type Tensor } from '@lithe/core';
import { freshRng, randn } from '@lithe/core/testing';
import { QuantizedKVCache, QuantizedKVLayer, attentionQuantized, kvQuantFormat, type KvQuantFormat } from '@lithe/kv-quant';
import { attentionFlashWebGpu, webGpuFlashPlan, webGpuFlashUnsupported } from './webgpu-attention.js';
import { attentionParams, type AttentionCase, caseLabel, QUANT_KINDS, uploadF32, webGpuOrSkip } from './attention-cases.js';

const rng = freshRng();
const cpu = new CpuBackend();
const gpu = await webGpuOrSkip();

/** Whether kv-quant's WebGPU cache takes this shape (whole 32-bit words of codes and parameters). */
const gpuCacheTakes = (c: AttentionCase, f: KvQuantFormat) => c.headDim % 8 === 0 && c.headDim <= 256 && (c.nKV * f.paramsPerHead) % 2 === 0;

/**
 * The case's keys and values in a CPU cache and a WebGPU layer holding the same bytes. Rows are
 * written in two passes (the cached prefix, then the rows of this call) and one row of each head
 * is constant, so the asymmetric scale-0 rows are read too.
 */
async function caches(g: WebGpuBackend, c: AttentionCase, f: KvQuantFormat): Promise<{ ref: KVCacheLayer; layer: KVCacheLayer }> {
  const kvWidth = c.nKV * c.headDim;
  const total = c.startPos + c.T - (c.noDiagonal ? 1 : 0);
  const k = randn(Math.max(total, 1) * kvWidth, rng.normal);
  const v = randn(Math.max(total, 1) * kvWidth, rng.normal);
  for (let t = 0; t < total; t++) for (let i = 0; i < kvWidth; i++) k[t * kvWidth + i] *= 0.5 + t / total;
  if (total > 2) {
    const at = Math.floor(rng.uniform() * total) * kvWidth;
    k.fill(k[at], at, at + c.headDim);
    v.fill(v[at], at, at + c.headDim);
  }
  const spec = (backend: Backend) => ({ backend, nLayers: 1, nKVHeads: c.nKV, headDim: c.headDim, capacity: c.startPos + c.T + 2 });
  const fill = (cache: QuantizedKVCache, b: Backend) => {
    for (const [from, to] of [[0, Math.min(c.startPos, total)], [Math.min(c.startPos, total), total]]) {
      if (to <= from) continue;
      const [ks, vs] = [k.subarray(from * kvWidth, to * kvWidth), v.subarray(from * kvWidth, to * kvWidth)];
      cache.write(0, uploadF32(b, ks, [to - from, kvWidth]), uploadF32(b, vs, [to - from, kvWidth]));
      cache.commit(to - from);
    }
  };
  const mirror = new QuantizedKVCache(spec(cpu), f);
  fill(mirror, cpu);
  const ref = mirror.layer(0);
  if (gpuCacheTakes(c, f)) {
    const onGpu = new QuantizedKVCache(spec(g), f);
    fill(onGpu, g);
    const layer = onGpu.layer(0);
    // The reference reads exactly what the GPU quantizer wrote.
    for (let i = 0; i < 4; i++) await g.read(layer.tensors[i], ref.tensors[i].handle as Uint8Array);
    return { ref, layer };
  }
  const up = (t: Tensor) => {
    const h = t.handle as Uint8Array;
    return g.upload(new Uint8Array(h.buffer, h.byteOffset, h.byteLength).slice(), t.shape, t.dtype, 'kv');
  };
  const layer = new QuantizedKVLayer(f, c.nKV, c.headDim, up(ref.keyCodes), up(ref.valueCodes), up(ref.keyParams), up(ref.valueParams));
  layer.length = ref.length;
  return { ref, layer };
}

async function compare(g: WebGpuBackend, c: AttentionCase, f: KvQuantFormat): Promise<void> {
  const { ref, layer } = await caches(g, c, f);
  const width = c.nHeads * c.headDim;
  const q = randn(c.T * width, rng.normal, 2);
  const p = attentionParams(c);
  const want = cpu.allocate([c.T, width], 'f32', 'other');
  attentionQuantized(uploadF32(cpu, q, [c.T, width]), ref, p, want);
  const [gq, out] = [uploadF32(g, q, [c.T, width]), g.allocate([c.T, width], 'f32', 'other')];
  expect(webGpuFlashUnsupported(gq, layer, p, out)).toBeNull();
  attentionFlashWebGpu(gq, layer, p, out);
  const got = (await g.read(out)) as Float32Array;
  const e = want.handle as Float32Array;
  let [worst, at, size] = [0, 0, 1];
  for (let i = 0; i < e.length; i++) {
    size = Math.max(size, Math.abs(e[i]));
    if (!(Math.abs(got[i] - e[i]) <= worst)) [worst, at] = [Math.abs(got[i] - e[i]), i];
  }
  expect(worst, `seed ${rng.seed}: element ${at}: ${got[at]} vs ${e[at]}`).toBeLessThanOrEqual(3e-5 * size);
  for (const t of [gq, out, ...(layer as QuantizedKVLayer).tensors]) g.dispose(t);
}

const CASES: AttentionCase[] = [
  { T: 1, nHeads: 8, nKV: 8, headDim: 64, startPos: 0 },
  { T: 1, nHeads: 8, nKV: 2, headDim: 64, startPos: 31 },
  { T: 1, nHeads: 8, nKV: 1, headDim: 64, startPos: 32 },
  { T: 1, nHeads: 32, nKV: 4, headDim: 64, startPos: 650 },
  { T: 1, nHeads: 8, nKV: 2, headDim: 24, startPos: 800 },
  { T: 1, nHeads: 4, nKV: 4, headDim: 12, startPos: 600 },
  { T: 1, nHeads: 16, nKV: 2, headDim: 72, startPos: 690, window: 300 },
  { T: 1, nHeads: 8, nKV: 1, headDim: 64, startPos: 650, noDiagonal: true },
  { T: 5, nHeads: 4, nKV: 4, headDim: 16, startPos: 0 },
  { T: 33, nHeads: 8, nKV: 2, headDim: 64, startPos: 0 },
  { T: 70, nHeads: 8, nKV: 1, headDim: 64, startPos: 45 },
  { T: 19, nHeads: 8, nKV: 2, headDim: 128, startPos: 45 },
  { T: 37, nHeads: 3, nKV: 3, headDim: 20, startPos: 64 },
  { T: 50, nHeads: 8, nKV: 2, headDim: 40, startPos: 20, window: 17 },
  { T: 29, nHeads: 8, nKV: 8, headDim: 8, startPos: 0, noDiagonal: true },
  { T: 12, nHeads: 8, nKV: 2, headDim: 64, startPos: 33, window: 40, noDiagonal: true },
  { T: 6, nHeads: 4, nKV: 2, headDim: 256, startPos: 40, window: 40, noDiagonal: true },
];

describe.skipIf(!gpu)(`WebGPU flash attention on quantized caches (seed ${rng.seed})`, () => {
  it('the cases cover split-K decode rows and several query tiles', () => {
    const plan = (c: AttentionCase) => webGpuFlashPlan(c.T, { nHeads: c.nHeads, nKVHeads: c.nKV, headDim: c.headDim, scale: 1, startPos: c.startPos, window: c.window });
    expect(CASES.some((c) => c.T === 1 && plan(c).nChunks > 2)).toBe(true);
    expect(CASES.some((c) => c.T > 1 && plan(c).tiles > c.nKV)).toBe(true);
  });

  describe.each(QUANT_KINDS)('%s', (_kind, options) => {
    it.each(CASES.map((c) => [caseLabel(c), c] as const))('%s', { timeout: 60_000 }, async (_, c) => {
      await compare(gpu!, c, kvQuantFormat(options));
    });
  });

  it('random shapes and kinds, seeded per run', { timeout: 120_000 }, async () => {
    for (let n = 0; n < 8; n++) {
      const nKV = 1 + Math.floor(rng.uniform() * 4);
      const group = [1, 2, 4, 8][Math.floor(rng.uniform() * 4)];
      const c: AttentionCase = {
        T: 1 + Math.floor(rng.uniform() * (n % 2 ? 3 : 40)),
        nHeads: nKV * group,
        nKV,
        headDim: 4 * (1 + Math.floor(rng.uniform() * 24)),
        startPos: Math.floor(rng.uniform() * 600),
        window: rng.uniform() < 0.3 ? 1 + Math.floor(rng.uniform() * 300) : undefined,
        noDiagonal: rng.uniform() < 0.2,
      };
      await compare(gpu!, c, kvQuantFormat(QUANT_KINDS[Math.floor(rng.uniform() * 4)][1]));
    }
  });

  it('says why it cannot read a layer it does not take', () => {
    const g = gpu!;
    const f = kvQuantFormat({ bits: 8 });
    const layer = (D: number) => {
      const [codes, params] = [() => g.allocate([4, 2 * D], 'u8', 'kv'), () => g.allocate([4, 4], 'f16', 'kv')];
      return new QuantizedKVLayer(f, 2, D, codes(), codes(), params(), params());
    };
    const why = (layerDim: number, D: number) => {
      const [q, out] = [g.allocate([1, 4 * D], 'f32', 'other'), g.allocate([1, 4 * D], 'f32', 'other')];
      return webGpuFlashUnsupported(q, layer(layerDim), { nHeads: 4, nKVHeads: 2, headDim: D, scale: 1, startPos: 0 }, out);
    };
    expect(why(264, 264)).toMatch(/^head dim 264 /);
    expect(why(64, 32)).toMatch(/KV heads × 64 for params of 2 × 32$/);
    expect(why(64, 64)).toBeNull();
  });
});
