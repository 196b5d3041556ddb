import { createPipeline, DenseLinear, type Pipeline } from '@lithe/core';
import { describe, expect, it } from 'vitest';
import { FourBitLinear } from './four-bit-weights.js';
import { nf4, type Nf4Options } from './plugin.js';
import { dequantize4bit, quantize4bit } from './quantize.js';
import { freshRng, modelFromWeights, tinyModel, type TinyModel } from '@lithe/core/testing';

const rng = freshRng();
console.log(`plugin.test seed ${rng.seed}`);

const PROMPT = 'The jury said that the city';
// An f32 KV cache throughout: these compare weight kernels at 1e-4, and with f16 a one-ulp difference
// in a K/V value can round to the neighbouring half on one side only.
const KV = 'f32';
const LINEAR = /\.(q|k|v|o|gate|up|down)_proj\.weight$/;

async function logits(p: Pipeline): Promise<Float32Array> {
  const cache = p.createCache(64);
  const out = (await p.backend.read(p.model.forward(Int32Array.from(p.encode(PROMPT)), cache, { logits: 'all' }))) as Float32Array;
  cache.dispose();
  return out;
}

/** The same model with every quantized weight replaced by its dequantized f32 values. */
function dequantizedTwin(m: TinyModel, o: Nf4Options, quantized: (name: string) => boolean): TinyModel {
  const weights = new Map(
    [...m.weights].map(([name, w]) => [
      name,
      quantized(name) ? dequantize4bit(quantize4bit(w, m.shapes.get(name)!, { type: o.type, blockSize: o.blockSize, doubleQuant: o.doubleQuant })) : w,
    ]),
  );
  return modelFromWeights(m.config, weights);
}

function rel(a: Float32Array, b: Float32Array): { maxAbs: number; rms: number } {
  let d2 = 0;
  let r2 = 0;
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    d2 += (a[i] - b[i]) ** 2;
    r2 += b[i] ** 2;
    maxAbs = Math.max(maxAbs, Math.abs(a[i] - b[i]));
  }
  return { maxAbs, rms: Math.sqrt(d2 / r2) };
}

/** Expected bytes of a quantized [n] weight: codes, absmax codes, nested scales (or f32 absmax). */
function expectedBytes(n: number, blockSize = 64, doubleQuant = true): number {
  const blocks = Math.ceil(n / blockSize);
  return Math.ceil(n / 2) + (doubleQuant ? blocks + 4 * Math.ceil(blocks / 256) : 4 * blocks);
}

describe('nf4() in a pipeline', () => {
  const tiny = tinyModel({}, 'F32', rng.seed);

  it('runs on the wasm backend with the logits of the CPU backend', async () => {
    const cpu = await createPipeline({ model: tiny.files, cacheSize: 64, kvDtype: KV, plugins: [nf4()] });
    const wasm = await createPipeline({ model: tiny.files, cacheSize: 64, kvDtype: KV, plugins: [nf4()], backend: 'wasm', threads: 2 });
    expect(rel(await logits(wasm), await logits(cpu)).maxAbs).toBeLessThan(1e-4);
    wasm.dispose();
  });

  for (const o of [{}, { type: 'fp4' }, { doubleQuant: false }, { blockSize: 32 }] as Nf4Options[]) {
    it(`${JSON.stringify(o)}: linear layers become 4-bit, memory is counted exactly, logits match the dequantized model`, async () => {
      const f32 = await createPipeline({ model: tiny.files, cacheSize: 64, kvDtype: KV });
      const q = await createPipeline({ model: tiny.files, cacheSize: 64, kvDtype: KV, plugins: [nf4(o)] });
      const mods = q.model.layers.flatMap((l) => [l.q, l.k!, l.v!, l.o, l.gate, l.up, l.down]);
      expect(mods.every((m) => m instanceof FourBitLinear)).toBe(true);
      expect(q.model.lmHead).toBeInstanceOf(DenseLinear); // skipped by default, as in bitsandbytes

      // Quantized layers: exactly the codes + absmax storage, ~4.127/32 of f32 with double quantization.
      const linearNames = [...tiny.weights.keys()].filter((n) => LINEAR.test(n));
      const params = linearNames.reduce((s, n) => s + tiny.weights.get(n)!.length, 0);
      const qBytes = mods.reduce((s, m) => s + m.bytes, 0);
      const expected = linearNames.reduce((s, n) => s + expectedBytes(tiny.weights.get(n)!.length, o.blockSize, o.doubleQuant ?? true), 0);
      expect(qBytes).toBe(expected);
      const ideal = o.doubleQuant === false ? 4.5 : 4 + 8 / (o.blockSize ?? 64) + 32 / ((o.blockSize ?? 64) * 256);
      expect((qBytes * 8) / params / ideal).toBeGreaterThan(0.999);
      expect((qBytes * 8) / params / ideal).toBeLessThan(1.01);

      // Memory accounting: what the backend counts is what the model holds, f32 less the linear savings.
      const mem = q.backend.memory.snapshot();
      expect(mem.current.weights).toBe(q.model.weightBytes);
      expect(mem.current.weights).toBe(f32.model.weightBytes - params * 4 + expected);
      // Loading kept at most one full-precision linear weight alive beyond the result.
      const largest = Math.max(...linearNames.map((n) => tiny.weights.get(n)!.byteLength));
      expect(mem.peak.weights).toBeLessThanOrEqual(mem.current.weights + largest);

      // Logits: equal to the model holding dequantized weights (same math), close to f32.
      const twin = await createPipeline({ model: dequantizedTwin(tiny, o, (n) => LINEAR.test(n)).files, cacheSize: 64, kvDtype: KV });
      const [lq, lt, lf] = [await logits(q), await logits(twin), await logits(f32)];
      expect(rel(lq, lt).maxAbs).toBeLessThan(1e-4);
      // A random model has no structure to protect: relative logit error is ~0.2-0.35 here (the
      // benchmark measures what matters on a trained model: perplexity).
      expect(rel(lq, lf).rms).toBeLessThan(0.5);
      for (const p of [f32, q, twin]) p.dispose();
      expect(q.backend.memory.snapshot().current.weights).toBe(0);
    });
  }

  it('skipModules: [] quantizes lm_head too; greedy text is produced through 4-bit layers', async () => {
    const q = await createPipeline({ model: tiny.files, cacheSize: 64, kvDtype: KV, plugins: [nf4({ skipModules: [] })] });
    expect(q.model.lmHead).toBeInstanceOf(FourBitLinear);
    const twin = await createPipeline({ model: dequantizedTwin(tiny, {}, (n) => LINEAR.test(n) || n === 'lm_head.weight').files, cacheSize: 64, kvDtype: KV });
    const greedy = { temperature: 0, maxTokens: 8, stopOnEos: false };
    expect((await q.generate(PROMPT, greedy).result).tokenIds).toEqual((await twin.generate(PROMPT, greedy).result).tokenIds);
    expect(q.backend.memory.snapshot().current.weights).toBe(q.model.weightBytes);
  });

  it('skipModules by name keeps those layers in full precision', async () => {
    const q = await createPipeline({ model: tiny.files, cacheSize: 64, kvDtype: KV, plugins: [nf4({ skipModules: ['lm_head', 'mlp.down_proj', 'layers.1.'] })] });
    expect(q.model.layers[0].down).toBeInstanceOf(DenseLinear);
    expect(q.model.layers[0].up).toBeInstanceOf(FourBitLinear);
    expect(q.model.layers[1].q).toBeInstanceOf(DenseLinear);
  });

  it('q/k/v biases (Qwen2-style) are owned and applied by the 4-bit module', async () => {
    const biased = tinyModel({ attention_bias: true }, 'F32', rng.seed);
    const q = await createPipeline({ model: biased.files, cacheSize: 64, kvDtype: KV, plugins: [nf4()] });
    const m = q.model.layers[1].k as FourBitLinear;
    expect(m.bias?.size).toBe(m.outFeatures);
    expect(q.backend.memory.snapshot().current.weights).toBe(q.model.weightBytes);
    const twin = await createPipeline({ model: dequantizedTwin(biased, {}, (n) => LINEAR.test(n)).files, cacheSize: 64, kvDtype: KV });
    expect(rel(await logits(q), await logits(twin)).maxAbs).toBeLessThan(1e-4);
  });

  it('rejects bad options before loading anything', () => {
    expect(() => nf4({ type: 'int4' as never })).toThrow(/nf4' or 'fp4/);
    expect(() => nf4({ blockSize: 63 })).toThrow(/even integer/);
  });
});
