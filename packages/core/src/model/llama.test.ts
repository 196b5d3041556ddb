import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../backends/cpu/cpu-backend.js';
import { loadHFDir } from '../io/hf-dir.js';
import { DenseKVCache } from '../kv-cache/dense-kv-cache.js';
import { hfWeightSource } from '../pipeline/weight-source.js';
import { maxAbsDiff } from '../testing/random.js';
import { referenceForward, type RefConfig } from '../testing/reference-llama.js';
import { tinyModel } from '../testing/tiny-model.js';
import { parseConfig } from './config.js';
import { LlamaModel } from './llama.js';
import { ropeInvFrequencies } from './rope-frequencies.js';
import { loadLlamaWeights } from './weights.js';

async function build(overrides: Record<string, unknown>, dtype: 'F32' | 'F16' | 'BF16' = 'F32', maxChunk?: number) {
  const tiny = tinyModel(overrides, dtype);
  const dir = await loadHFDir(tiny.files);
  const config = parseConfig(dir.config);
  const backend = new CpuBackend();
  const weights = await loadLlamaWeights(backend, hfWeightSource(dir), config);
  const model = new LlamaModel(config, backend, weights, maxChunk);
  // f32 keys and values: the comparison with the f64 reference is strict.
  const cache = new DenseKVCache({ backend, nLayers: config.nLayers, nKVHeads: config.nKVHeads, headDim: config.headDim, capacity: 64, dtype: 'f32' });
  return { tiny, config, model, cache, backend };
}

const IDS = [1, 415, 5565, 349, 264, 1369, 28723, 661, 403, 3196, 3659, 28725];

// Each architecture the config parser accepts, against the independent f64 reference.
const VARIANTS: [string, Record<string, unknown>][] = [
  ['llama (GQA, untied)', {}],
  ['SmolLM-style tied embeddings, MQA', { tie_word_embeddings: true, num_key_value_heads: 1 }],
  ['qwen2 q/k/v bias', { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', rope_theta: 1000000 }],
  ['mistral sliding window', { architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: 5 }],
  ['llama 3.1 rope scaling', { rope_theta: 500000, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8 } }],
  ['explicit head_dim', { head_dim: 32 }],
];

describe('LlamaModel against an f64 reference forward', () => {
  for (const [name, overrides] of VARIANTS) {
    it(name, async () => {
      const { tiny, config, model, cache } = await build(overrides);
      const logits = (await model.backend.read(model.forward(Int32Array.from(IDS), cache, { logits: 'all' }))) as Float32Array;
      const ref = referenceForward(tiny.config as unknown as RefConfig, tiny.weights, IDS, ropeInvFrequencies(config));
      for (let t = 0; t < IDS.length; t++) {
        expect(maxAbsDiff(logits.subarray(t * 32000, (t + 1) * 32000), ref[t])).toBeLessThan(2e-4);
      }
    });
  }

  it('prefill + token-by-token decode through the cache equals one full forward', async () => {
    const { model, cache } = await build({}, 'F32', 4);
    const full = (await model.backend.read(model.forward(Int32Array.from(IDS), cache, { logits: 'all' }))) as Float32Array;
    cache.reset();
    const last = (await model.backend.read(model.forward(Int32Array.from(IDS.slice(0, 7)), cache))) as Float32Array;
    expect(maxAbsDiff(last, full.subarray(6 * 32000, 7 * 32000))).toBeLessThan(1e-4);
    for (let t = 7; t < IDS.length; t++) {
      const step = (await model.backend.read(model.forward(Int32Array.from([IDS[t]]), cache))) as Float32Array;
      expect(maxAbsDiff(step, full.subarray(t * 32000, (t + 1) * 32000))).toBeLessThan(1e-4);
    }
    expect(cache.length).toBe(IDS.length);
  });

  it("splits a forward at the cache's writeLimit, with the same logits", async () => {
    const { model, cache } = await build({}, 'F32', 8);
    const full = (await model.backend.read(model.forward(Int32Array.from(IDS), cache, { logits: 'all' }))) as Float32Array;
    const written: number[] = [];
    const limited = Object.assign(cache, { writeLimit: () => 5 - (cache.length % 5) });
    const commit = cache.commit.bind(cache);
    limited.commit = (n: number) => (written.push(n), commit(n));
    limited.reset();
    const again = (await model.backend.read(model.forward(Int32Array.from(IDS), limited, { logits: 'all' }))) as Float32Array;
    expect(written).toEqual([5, 5, 2]);
    expect(maxAbsDiff(again, full)).toBeLessThan(1e-5);
  });

  it('f16 and bf16 checkpoints load and match the reference on their rounded weights', async () => {
    for (const dtype of ['F16', 'BF16'] as const) {
      const { tiny, config, model, cache } = await build({}, dtype);
      expect(model.layers[0].q.bytes).toBe(64 * 64 * 2);
      const logits = (await model.backend.read(model.forward(Int32Array.from(IDS), cache))) as Float32Array;
      const ref = referenceForward(tiny.config as unknown as RefConfig, tiny.weights, IDS, ropeInvFrequencies(config));
      expect(maxAbsDiff(logits, ref[IDS.length - 1])).toBeLessThan(2e-4);
    }
  });

  it('accounts weight, KV and activation bytes on the backend', async () => {
    const { model, cache, backend, config } = await build({});
    const m = backend.memory.snapshot();
    expect(m.current.weights).toBe(model.weightBytes);
    expect(m.current.kv).toBe(cache.bytes);
    expect(cache.bytes).toBe(2 * config.nLayers * 64 * config.nKVHeads * config.headDim * 4);
    model.forward(Int32Array.from(IDS), cache);
    expect(backend.memory.snapshot().current.activations).toBeGreaterThan(0);
    model.releaseActivations();
    expect(backend.memory.snapshot().current.activations).toBe(0);
  });
});
