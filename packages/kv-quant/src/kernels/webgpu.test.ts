import { CpuBackend, WebGpuBackend, createPipeline, type AttentionParams, type Backend, type Tensor } from '@lithe/core';
import { describe, expect, it } from 'vitest';
import { freshRng, randn, tinyModel } from '@lithe/core/testing';
import { kvQuantFormat } from '../format.js';
import { kvQuant } from '../kv-quant.js';
import { QuantizedKVCache } from '../quantized-kv-cache.js';
import { dequantizeRow, rowScale } from '../quantize.js';
import { attentionQuantized } from './cpu-attention.js';
import { attentionQuantizedWebGpu } from './webgpu.js';

const rng = freshRng();
// Dawn runs on a software adapter where there is no GPU; where no adapter can be had, skip (CI fails).
let gpu: WebGpuBackend | null = null;
try {
  gpu = await WebGpuBackend.create();
} catch (e) {
  if (process.env.CI) throw e;
  console.warn(`skipping WebGPU tests: ${(e as Error).message}`);
}
const cpu = new CpuBackend();
const FORMATS = [8, 4].flatMap((bits) => (['asymmetric', 'symmetric'] as const).map((mode) => kvQuantFormat({ bits: bits as 8 | 4, mode })));
const [nHeads, nKVHeads, D, S] = [8, 2, 64, 70];
const W = nKVHeads * D;
const upload = (b: Backend, a: Float32Array, shape: number[]): Tensor => b.upload(new Uint8Array(a.slice().buffer), shape, 'f32', 'other');

describe.skipIf(!gpu)(`kv-quant on WebGPU (seed ${rng.seed})`, () => {
  for (const format of FORMATS) {
    describe(format.kind, () => {
      const k = randn(S * W, rng.normal);
      const v = randn(S * W, rng.normal);
      for (let t = 0; t < S; t++) for (let i = 0; i < W; i++) k[t * W + i] *= 0.5 + t / S;

      // Written on the GPU in two forward passes; read back into a CPU cache of the same layout.
      const built = (async () => {
        const b = gpu!;
        const cache = new QuantizedKVCache({ backend: b, nLayers: 1, nKVHeads, headDim: D, capacity: S }, format);
        for (const [from, to] of [[0, 13], [13, S]]) {
          cache.write(0, upload(b, k.subarray(from * W, to * W), [to - from, W]), upload(b, v.subarray(from * W, to * W), [to - from, W]));
          cache.commit(to - from);
        }
        const mirror = new QuantizedKVCache({ backend: cpu, nLayers: 1, nKVHeads, headDim: D, capacity: S }, format);
        const [g, c] = [cache.layer(0), mirror.layer(0)];
        for (let i = 0; i < 4; i++) await b.read(g.tensors[i], c.tensors[i].handle as Uint8Array);
        c.length = S;
        return { cache, mirror };
      })();

      it('quantizes on the GPU within half a step of every value', async () => {
        const { mirror } = await built;
        const l = mirror.layer(0);
        const out = new Float32Array(D);
        for (const [src, codes, params] of [[k, l.keyCodes, l.keyParams], [v, l.valueCodes, l.valueParams]] as const) {
          for (let r = 0; r < S * nKVHeads; r++) {
            const po = r * format.paramsPerHead;
            dequantizeRow(format, codes.handle as Uint8Array, (r * D * format.bits) / 8, params.handle as Uint16Array, po, D, out);
            const half = rowScale(params.handle as Uint16Array, po) / 2;
            expect(half).toBeGreaterThan(0);
            for (let d = 0; d < D; d++) expect(Math.abs(out[d] - src[r * D + d])).toBeLessThanOrEqual(half * (1 + 1e-4) + 1e-6);
          }
        }
      });

      for (const c of [
        { name: 'prefill', rows: S, startPos: 0 },
        { name: 'decode', rows: 1, startPos: S - 1 },
        { name: 'chunk with a sliding window', rows: 6, startPos: 40, window: 9 },
        { name: 'prefill with a masked diagonal (LCKV)', rows: S, startPos: 0, noDiagonal: true },
        { name: 'decode past the cache, masked diagonal', rows: 1, startPos: S, noDiagonal: true },
      ] as { name: string; rows: number; startPos: number; window?: number; noDiagonal?: boolean }[]) {
        it(`attention (${c.name}) matches the CPU kernel on the same cache`, async () => {
          const { cache, mirror } = await built;
          const q = randn(c.rows * nHeads * D, rng.normal);
          const p: AttentionParams = { nHeads, nKVHeads, headDim: D, scale: 1 / Math.sqrt(D), startPos: c.startPos, window: c.window, noDiagonal: c.noDiagonal };
          const want = cpu.allocate([c.rows, nHeads * D], 'f32', 'other');
          attentionQuantized(upload(cpu, q, [c.rows, nHeads * D]), mirror.layer(0), p, want);
          const out = gpu!.allocate([c.rows, nHeads * D], 'f32', 'other');
          attentionQuantizedWebGpu(upload(gpu!, q, [c.rows, nHeads * D]), cache.layer(0), p, out);
          const got = (await gpu!.read(out)) as Float32Array;
          const ref = want.handle as Float32Array;
          for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i] - ref[i])).toBeLessThanOrEqual(1e-4 * (1 + Math.abs(ref[i])));
        });
      }
    });
  }

  it('runs a pipeline: int8 logits on WebGPU match int8 logits on the CPU, and greedy text agrees', async () => {
    const model = tinyModel({}, 'F32', rng.seed);
    const open = (backend: 'cpu' | WebGpuBackend) => createPipeline({ model: model.files, backend, plugins: [kvQuant({ bits: 8 })], cacheSize: 48 });
    const [onCpu, onGpu] = [await open('cpu'), await open(gpu!)];
    const ids = onCpu.encode('The jury said that the city');
    const logits = async (p: typeof onCpu) => {
      const cache = p.createCache();
      const out = (await p.backend.read(p.model.forward(Int32Array.from(ids), cache, { logits: 'all' }))) as Float32Array;
      cache.dispose();
      return Float32Array.from(out);
    };
    const [a, b] = [await logits(onCpu), await logits(onGpu)];
    let diff = 0, mag = 0;
    for (let i = 0; i < a.length; i++) {
      diff = Math.max(diff, Math.abs(a[i] - b[i]));
      mag = Math.max(mag, Math.abs(a[i]));
    }
    // Float rounding differs (and can move a code by one at a rounding tie), nothing more.
    expect(diff / mag).toBeLessThan(1e-2);
    const greedy = async (p: typeof onCpu) => (await p.generate(ids, { maxTokens: 4, temperature: 0 }).result).tokenIds;
    const [x, y] = [await greedy(onCpu), await greedy(onGpu)];
    expect(y.length).toBe(4);
    if (diff / mag < 1e-4) expect(y).toEqual(x);
    onCpu.dispose();
    onGpu.dispose();
  });
});
