import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPipeline, f16ToF32, GroupedIntLinear, memoryByteSource, parseSafetensors, type Pipeline } from '@lithe/core';
import { freshRng, maxAbsDiff, modelFromWeights, tinyModel } from '@lithe/core/testing';
import { afterAll, describe, expect, it } from 'vitest';

/** scale · (code − zero), [out, in]. */
function dequantize(q: AwqQuantized): Float32Array {
  const groups = q.inFeatures / q.groupSize;
  return Float32Array.from(q.codes, (c, k) => {
    const o = Math.floor(k / q.inFeatures);
    const g = o * groups + Math.floor((k % q.inFeatures) / q.groupSize);
    return f16ToF32(q.scales[g]) * (c - q.zeros[g]);
  });
}
import { fromAutoAwq } from './checkpoint.js';
import { quantizeModelDir } from './node.js';
import { awq, awqOptionsFromConfig } from './plugin.js';
import type { AwqOptions } from './quantize-model.js';
import type { AwqQuantized } from './quantizer.js';

const rng = freshRng();
const root = await mkdtemp(join(tmpdir(), 'lithe-awq-node-'));
afterAll(() => rm(root, { recursive: true, force: true }));
const TEXT = 'The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness. '.repeat(6);

async function allLogits(p: Pipeline): Promise<Float32Array> {
  const cache = p.createCache(32);
  const out = (await p.backend.read(p.model.forward(Int32Array.from(p.encode('Once upon a time there was a')), cache, { logits: 'all' }))) as Float32Array;
  cache.dispose();
  return out.slice();
}

describe(`quantizeModelDir writes AutoAWQ GEMM directories that awq() loads (seed ${rng.seed})`, () => {
  const cases: [string, Record<string, unknown>, AwqOptions & { samples?: number; seqLen?: number }][] = [
    ['qwen2 biases, grouped-query, AWQ g32', { attention_bias: true, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' }, { method: 'awq', groupSize: 32, samples: 4, seqLen: 24 }],
    ['qwen2 biases, multi-head (v folded into o), AWQ g64', { attention_bias: true, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', num_key_value_heads: 4, intermediate_size: 128 }, { method: 'awq', groupSize: 64, samples: 3, seqLen: 16 }],
    ['llama, round-to-nearest g32', {}, { method: 'rtn', groupSize: 32 }],
  ];
  for (const [name, overrides, o] of cases) {
    it(`${name}: runs as the f32 model of the codes, scales and folded norms it chose`, async () => {
      const tiny = tinyModel(overrides, 'F32', rng.seed);
      const src = join(root, `src-${name.replace(/\W+/g, '-')}`);
      tiny.write(src);
      const out = `${src}-awq`;
      const results = new Map<string, AwqQuantized>();
      let calib: [number, number] | null = null;
      const report = await quantizeModelDir(src, out, { ...o, calibrationText: TEXT, onCalibration: (s, l) => (calib = [s, l]), onLinear: (n, q) => results.set(n, q) });
      expect(report.quantizedTensors).toBe(14);
      expect(report.bitsPerParameter).toBeCloseTo(4 + (16 + 4) / o.groupSize!, 6);
      expect(report.blocks.length).toBe(o.method === 'awq' ? 2 : 0);
      if (o.method === 'awq') expect(calib).toEqual([o.samples, o.seqLen]);
      expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
      const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
      expect(config.quantization_config).toMatchObject({ quant_method: 'awq', bits: 4, group_size: o.groupSize, zero_point: true, version: 'gemm' });

      // The file holds AutoAWQ's tensors, and they unpack to the quantizer's codes.
      const file = await parseSafetensors(memoryByteSource('model.safetensors', new Uint8Array(readFileSync(join(out, 'model.safetensors')))));
      const p0 = 'model.layers.1.mlp.down_proj';
      expect(file.tensors.get(`${p0}.weight`)).toBeUndefined();
      const inner = (overrides.intermediate_size as number | undefined) ?? 96;
      expect(file.tensors.get(`${p0}.qweight`)).toMatchObject({ dtype: 'i32', shape: [inner, 8] });
      expect(file.tensors.get(`${p0}.scales`)).toMatchObject({ dtype: 'f16', shape: [inner / o.groupSize!, 64] });
      const get = async (n: string) => (await file.read(n)).slice().buffer;
      const d = fromAutoAwq({ qweight: new Int32Array(await get(`${p0}.qweight`)), qzeros: new Int32Array(await get(`${p0}.qzeros`)), scales: new Uint16Array(await get(`${p0}.scales`)) }, 64, inner, o.groupSize!);
      const q = results.get(p0)!;
      expect(Array.from(d.zeros)).toEqual(Array.from(q.zeros));
      expect(Array.from(d.scales)).toEqual(Array.from(q.scales));

      const loaded = await createPipeline({ model: out, plugins: [awq(awqOptionsFromConfig(config)!)], cacheSize: 32, kvDtype: 'f32' });
      for (const layer of loaded.model.layers) for (const m of [layer.q, layer.k, layer.v, layer.o, layer.gate, layer.up, layer.down]) expect(m).toBeInstanceOf(GroupedIntLinear);
      // The reference: the f32 model of what the quantizer chose (dequantized linears) and of the
      // norms and biases as written (folded).
      const values = new Map(tiny.weights);
      for (const [n, q] of results) values.set(`${n}.weight`, dequantize(q));
      let folded = 0;
      for (const [n, info] of file.tensors) {
        if (!/(layernorm\.weight|\.bias)$/.test(n)) continue;
        expect(info.dtype).toBe('f32');
        const v = new Float32Array(await get(n));
        if (maxAbsDiff(v, tiny.weights.get(n)!) > 0) folded++;
        values.set(n, v);
      }
      // AWQ folds into a block's norm for each of q/k/v and gate/up whose α is above 0, and into
      // v's bias when o is scaled (these models' MLPs have no bias); round-to-nearest into nothing.
      const expected = report.blocks.reduce((n, b) => n + Number(b.alpha.qkv! > 0) + Number(b.alpha.gateUp! > 0) + Number((b.alpha.o ?? 0) > 0), 0);
      expect(folded).toBe(expected);
      if (o.method === 'awq') expect(expected).toBeGreaterThan(0);
      const refDir = `${out}-ref`;
      modelFromWeights(tiny.config, values).write(refDir);
      const mem = await createPipeline({ model: refDir, cacheSize: 32, kvDtype: 'f32' });
      const a = await allLogits(loaded);
      expect(maxAbsDiff(a, await allLogits(mem))).toBeLessThan(2e-4);
      // And it is a 4-bit model of the original, not something else.
      const f32 = await createPipeline({ model: src, dtype: 'f32', cacheSize: 32, kvDtype: 'f32' });
      const ref = await allLogits(f32);
      const rel = maxAbsDiff(a, ref) / ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(rel).toBeGreaterThan(1e-4);
      expect(rel).toBeLessThan(0.6);
      for (const p of [loaded, mem, f32]) p.dispose();
    });
  }

  it('explains a missing calibration text', async () => {
    const src = join(root, 'plain');
    tinyModel({}, 'F32', rng.seed).write(src);
    await expect(quantizeModelDir(src, join(root, 'none'), { method: 'awq' })).rejects.toThrow(/AWQ needs calibration text \(--calibration FILE\)/);
  });
});
