import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createPipeline, dequantizeGroupedInt, f16ToF32, f32ToF16, GroupedIntLinear, memoryByteSource, parseSafetensors } from '@lithe/core';
import { freshRng, maxAbsDiff, modelFromWeights, tinyModel } from '@lithe/core/testing';
import { fromAutoAwq, toAutoAwq, type AutoAwqTensors } from './checkpoint.js';
import { awq, awqOptionsFromConfig } from './plugin.js';

const fixture = new URL('../../../tooling/fixtures/awq/autoawq-layer.safetensors', import.meta.url);

describe('AutoAWQ GEMM checkpoints packed by PyTorch (tooling/fixtures/awq/make_awq_fixture.py)', () => {
  it('load to exactly the weights AutoAWQ dequantizes, and are written back byte for byte', async () => {
    const file = await parseSafetensors(memoryByteSource('autoawq-layer.safetensors', new Uint8Array(readFileSync(fixture))));
    const get = async (name: string) => (await file.read(name)).slice().buffer;
    for (const group of [128, 64, 32]) {
      const p = `model.layers.0.g${group}`;
      const t: AutoAwqTensors = { qweight: new Int32Array(await get(`${p}.qweight`)), qzeros: new Int32Array(await get(`${p}.qzeros`)), scales: new Uint16Array(await get(`${p}.scales`)) };
      const d = fromAutoAwq(t, 64, 256, group);
      expect(Array.from(dequantizeGroupedInt(d))).toEqual(Array.from(new Float32Array(await get(`${p}.expected`))));
      expect(Math.min(...d.zeros)).toBe(0); // the fixture has a row of non-negative weights
      // Back to AutoAWQ's orientation ([groups, out]) and packed again.
      const groups = 256 / group;
      const codes = new Uint8Array(64 * 256);
      const zeros = new Uint8Array(groups * 64);
      const scales = new Uint16Array(groups * 64);
      const w = dequantizeGroupedInt(d);
      for (let o = 0; o < 64; o++) {
        for (let g = 0; g < groups; g++) {
          zeros[g * 64 + o] = d.zeros[o * groups + g];
          scales[g * 64 + o] = d.scales[o * groups + g];
        }
        for (let i = 0; i < 256; i++) {
          const g = Math.floor(i / group);
          codes[o * 256 + i] = Math.round(w[o * 256 + i] / f16ToF32(scales[g * 64 + o])) + zeros[g * 64 + o];
        }
      }
      const back = toAutoAwq(codes, zeros, scales, 64, 256);
      expect(Array.from(back.qweight)).toEqual(Array.from(t.qweight));
      expect(Array.from(back.qzeros)).toEqual(Array.from(t.qzeros));
    }
  });

  it('explains shapes and configs it cannot read', () => {
    const t: AutoAwqTensors = { qweight: new Int32Array(32 * 2), qzeros: new Int32Array(2), scales: new Uint16Array(16) };
    expect(() => fromAutoAwq(t, 12, 32, 32, 'q_proj')).toThrow(/q_proj: .*12 outputs are not a multiple of 8/);
    expect(() => fromAutoAwq(t, 16, 32, 24)).toThrow(/group size 24 does not divide the 32 inputs/);
    expect(() => fromAutoAwq({ ...t, scales: new Uint16Array(8) }, 16, 32, 32)).toThrow(/scales has 8 values, expected 16/);
    expect(awqOptionsFromConfig({ quantization_config: { quant_method: 'gptq' } })).toBeNull();
    expect(awqOptionsFromConfig({ quantization_config: { quant_method: 'awq', bits: 4, group_size: 64, zero_point: true, version: 'GEMM' } })).toEqual({ groupSize: 64 });
    expect(() => awqOptionsFromConfig({ quantization_config: { quant_method: 'awq', version: 'gemv' } })).toThrow(/version 'gemv' is not supported/);
  });
});

/** Safetensors bytes of named raw tensors (8-byte header length, JSON header, data). */
function safetensors(entries: { name: string; dtype: string; shape: number[]; data: Uint8Array }[]): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.data.byteLength] };
    offset += e.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(new TextEncoder().encode(json), 8);
  let p = 8 + json.length;
  for (const e of entries) {
    out.set(e.data, p);
    p += e.data.byteLength;
  }
  return out;
}

const rng = freshRng();
const root = await mkdtemp(join(tmpdir(), 'lithe-awq-'));
afterAll(() => rm(root, { recursive: true, force: true }));

describe(`an AWQ directory loaded with awq() (seed ${rng.seed})`, () => {
  it('runs as the f32 model of its dequantized weights', async () => {
    const tiny = tinyModel({ attention_bias: true, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' }, 'F32', rng.seed);
    const G = 32;
    const entries: { name: string; dtype: string; shape: number[]; data: Uint8Array }[] = [];
    const values = new Map(tiny.weights);
    for (const [name, w] of tiny.weights) {
      const shape = tiny.shapes.get(name)!;
      const linear = /layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/.test(name);
      if (!linear) {
        entries.push({ name, dtype: 'F32', shape, data: new Uint8Array(w.buffer, w.byteOffset, w.byteLength) });
        continue;
      }
      // AutoAWQ's min-max quantizer with a zero point, per group of 32 inputs.
      const [outF, inF] = shape;
      const groups = inF / G;
      const codes = new Uint8Array(outF * inF), zeros = new Uint8Array(groups * outF), scales = new Uint16Array(groups * outF);
      const deq = new Float32Array(outF * inF);
      for (let o = 0; o < outF; o++) {
        for (let g = 0; g < groups; g++) {
          const row = w.subarray(o * inF + g * G, o * inF + (g + 1) * G);
          const mn = Math.min(...row), mx = Math.max(...row);
          const s = f16ToF32(f32ToF16(Math.max(mx - mn, 1e-5) / 15));
          const z = Math.min(15, Math.max(0, -Math.round(mn / s)));
          scales[g * outF + o] = f32ToF16(s);
          zeros[g * outF + o] = z;
          for (let i = 0; i < G; i++) {
            const q = Math.min(15, Math.max(0, Math.round(row[i] / s) + z));
            codes[o * inF + g * G + i] = q;
            deq[o * inF + g * G + i] = Math.fround(s * (q - z));
          }
        }
      }
      const t = toAutoAwq(codes, zeros, scales, outF, inF);
      const prefix = name.replace(/\.weight$/, '');
      const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      entries.push(
        { name: `${prefix}.qweight`, dtype: 'I32', shape: [inF, outF / 8], data: bytes(t.qweight) },
        { name: `${prefix}.qzeros`, dtype: 'I32', shape: [groups, outF / 8], data: bytes(t.qzeros) },
        { name: `${prefix}.scales`, dtype: 'F16', shape: [groups, outF], data: bytes(t.scales) },
      );
      values.set(name, deq);
    }
    const dir = join(root, 'awq');
    tiny.write(dir);
    const config = { ...tiny.config, quantization_config: { quant_method: 'awq', bits: 4, group_size: G, zero_point: true, version: 'gemm' } };
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    await writeFile(join(dir, 'model.safetensors'), safetensors(entries));
    const refDir = join(root, 'ref');
    modelFromWeights(tiny.config, values).write(refDir);

    await expect(createPipeline({ model: dir })).rejects.toThrow(/holds AWQ weights .*: load it with the awq\(\) plugin/);
    const a = await createPipeline({ model: dir, plugins: [awq(awqOptionsFromConfig(config)!)], cacheSize: 32, kvDtype: 'f32' });
    const b = await createPipeline({ model: refDir, cacheSize: 32, kvDtype: 'f32' });
    expect(a.model.layers[1].gate).toBeInstanceOf(GroupedIntLinear);
    expect((a.model.layers[0].q as GroupedIntLinear).bias).not.toBeNull();
    const logits = async (p: typeof a) => Float32Array.from((await p.backend.read(p.model.forward(Int32Array.from(p.encode('Once upon a time there was')), p.createCache(32), { logits: 'all' }))) as Float32Array);
    expect(maxAbsDiff(await logits(a), await logits(b))).toBeLessThan(2e-4);
    a.dispose();
    b.dispose();
  });
});
