import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPipeline, GroupedIntLinear, perplexity, type Pipeline } from '@lithe/core';
import { freshRng, maxAbsDiff, modelFromWeights, tinyModel } from '@lithe/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { dequantizeLinear, type QuantizedLinear } from './gptq.js';
import { quantizeModelDir, type QuantizeDirOptions } from './node.js';
import { gptq, gptqOptionsFromConfig } from './plugin.js';

const rng = freshRng();
const root = await mkdtemp(join(tmpdir(), 'lithe-gptq-'));
afterAll(() => rm(root, { recursive: true, force: true }));

const tiny = tinyModel({ attention_bias: true, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' }, 'F32', rng.seed);
const src = join(root, 'f32');
await tiny.write(src);
const TEXT = 'The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness. '.repeat(6);

async function allLogits(p: Pipeline): Promise<Float32Array> {
  const cache = p.createCache(32);
  const out = (await p.backend.read(p.model.forward(Int32Array.from(p.encode('Once upon a time there was a')), cache, { logits: 'all' }))) as Float32Array;
  cache.dispose();
  return out.slice();
}

describe(`quantizeModelDir, then loading the directory with gptq() (seed ${rng.seed})`, () => {
  const cases: QuantizeDirOptions[] = [
    { method: 'gptq', bits: 4, groupSize: 32, actOrder: true, samples: 4, seqLen: 24 },
    { method: 'gptq', bits: 3, groupSize: -1, sym: true, samples: 3, seqLen: 16 },
    { method: 'rtn', bits: 8, groupSize: 32 },
  ];
  for (const o of cases) {
    it(`${JSON.stringify(o)}: loads back to exactly the weights the quantizer chose`, async () => {
      const out = join(root, `q-${JSON.stringify(o).replace(/\W/g, '')}`);
      const results = new Map<string, QuantizedLinear>();
      let calib: [number, number] | null = null;
      const report = await quantizeModelDir(src, out, {
        ...o,
        calibrationText: TEXT,
        onCalibration: (s, l) => (calib = [s, l]),
        onLinear: (name, q) => results.set(name, q),
      });
      expect(report.quantizedTensors).toBe(2 * 7);
      expect(results.size).toBe(14);
      if (o.method === 'gptq') expect(calib).toEqual([o.samples, o.seqLen]);
      expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors', 'quantize_config.json', 'tokenizer.json', 'tokenizer_config.json']);
      const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
      expect(config.quantization_config).toMatchObject({ quant_method: 'gptq', bits: o.bits, group_size: o.groupSize, desc_act: o.actOrder ?? false, sym: o.sym ?? false, checkpoint_format: 'gptq' });
      expect(JSON.parse(await readFile(join(out, 'quantize_config.json'), 'utf8'))).toEqual(config.quantization_config);

      const loaded = await createPipeline({ model: out, plugins: [gptq(gptqOptionsFromConfig(config)!)], cacheSize: 32, kvDtype: 'f32' });
      for (const layer of loaded.model.layers) for (const m of [layer.q, layer.k, layer.v, layer.o, layer.gate, layer.up, layer.down]) expect(m).toBeInstanceOf(GroupedIntLinear);
      expect((loaded.model.layers[0].q as GroupedIntLinear).bias).not.toBeNull();

      // The reference: an f32 model whose linears are the quantizer's results, dequantized.
      const values = new Map(tiny.weights);
      for (const [name, q] of results) values.set(`${name}.weight`, Float32Array.from(dequantizeLinear(q)));
      const refDir = join(out, '..', `${out.split('/').pop()}-ref`);
      modelFromWeights(tiny.config, values).write(refDir);
      const ref = await createPipeline({ model: refDir, cacheSize: 32, kvDtype: 'f32' });
      const a = await allLogits(loaded);
      const b = await allLogits(ref);
      expect(maxAbsDiff(a, b)).toBeLessThan(2e-4);
      const ga = await loaded.generate('Once upon a time', { maxTokens: 8, temperature: 0 }).result;
      const gb = await ref.generate('Once upon a time', { maxTokens: 8, temperature: 0 }).result;
      expect(ga.text).toBe(gb.text);
      loaded.dispose();
      ref.dispose();
    });
  }

  it('needs calibration text for GPTQ and explains so', async () => {
    await expect(quantizeModelDir(src, join(root, 'none'), { bits: 4, groupSize: 32 })).rejects.toThrow(/needs calibration text/);
  });
});

describe('the trained fixture: GPTQ beats round-to-nearest on held-out perplexity', () => {
  it('3 bits, group 128, act-order: less than half the perplexity increase of round-to-nearest', async () => {
    const fixture = new URL('../../../tooling/fixtures/models/tiny-brown', import.meta.url).pathname;
    // Calibrated on training documents, scored on the held-out ones.
    const calibrationText = await readFile(new URL('../../../tooling/fixtures/data/brown-calibration.txt', import.meta.url), 'utf8');
    const heldout = await readFile(new URL('../../../tooling/fixtures/data/brown-heldout.txt', import.meta.url), 'utf8');
    const ppl = async (dir: string, plugins = [gptq()]) => {
      const p = await createPipeline({ model: dir, plugins, cacheSize: 256 });
      const r = await perplexity(p.model, p.createCache(256), p.encode(heldout).slice(0, 1024), 256);
      p.dispose();
      return r.perplexity;
    };
    const g = join(root, 'brown-gptq');
    const r = join(root, 'brown-rtn');
    await quantizeModelDir(fixture, g, { method: 'gptq', bits: 3, groupSize: 128, actOrder: true, calibrationText, samples: 16, seqLen: 256 });
    await quantizeModelDir(fixture, r, { method: 'rtn', bits: 3, groupSize: 128 });
    const [base, pg, pr] = [await ppl(fixture, []), await ppl(g), await ppl(r)];
    console.log(`tiny-brown 3 bits group 128: f32 ${base.toFixed(3)}, gptq ${pg.toFixed(3)}, rtn ${pr.toFixed(3)}`);
    expect(pr).toBeGreaterThan(base);
    expect(pg - base).toBeLessThan(0.5 * (pr - base));
  }, 600_000);
});
