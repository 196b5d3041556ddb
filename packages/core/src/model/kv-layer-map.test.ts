import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../backends/cpu/cpu-backend.js';
import { loadHFDir } from '../io/hf-dir.js';
import { DenseKVCache } from '../kv-cache/dense-kv-cache.js';
import { hfWeightSource } from '../pipeline/weight-source.js';
import { freshRng, maxAbsDiff } from '../testing/random.js';
import { tinyModel } from '../testing/tiny-model.js';
import { kvBytesPerToken, parameterCount, parseConfig, type LlamaConfig } from './config.js';
import { checkKVLayerMap, identityKVLayerMap, kvSlots, type KVLayerMap } from './kv-layer-map.js';
import { LlamaModel } from './llama.js';
import { ropeInvFrequencies } from './rope-frequencies.js';
import { loadLlamaWeights } from './weights.js';

const mapOf = (source: number[], window: (number | null)[] = source.map(() => null)): KVLayerMap => ({ source, noDiagonal: source.map((s, i) => s > i), window });

describe('KV layer map', () => {
  it('gives a cache layer only to the layers that compute keys and values', () => {
    expect(kvSlots(mapOf([0, 1, 5, 5, 5, 5]))).toEqual({ write: [0, 1, -1, -1, -1, 2], read: [0, 1, 2, 2, 2, 2], count: 3, readFromBelow: [5] });
    expect(kvSlots(mapOf([0, 0, 2, 2, 4, 4]))).toEqual({ write: [0, -1, 1, -1, 2, -1], read: [0, 0, 1, 1, 2, 2], count: 3, readFromBelow: [] });
    expect(kvSlots(identityKVLayerMap(3)).count).toBe(3);
  });

  it('rejects maps a model cannot run, saying why', () => {
    expect(() => checkKVLayerMap(mapOf([0, 1]), 3)).toThrow('needs one entry per layer (3), got 2');
    expect(() => checkKVLayerMap(mapOf([0, 3, 1]), 3)).toThrow('layer 1 reads layer 3, which is not in [0, 2]');
    expect(() => checkKVLayerMap(mapOf([0, 2, 1]), 3)).toThrow('layer 1 reads layer 2, but layer 2 reads layer 1');
    expect(() => checkKVLayerMap({ ...mapOf([0, 2, 2]), noDiagonal: [false, false, false] }, 3)).toThrow('layer 1 reads layer 2 above it, so it cannot see the current token');
    expect(() => checkKVLayerMap(mapOf([0, 1, 2], [null, 0, null]), 3)).toThrow('layer 1 has sliding window 0');
    expect(() => checkKVLayerMap(mapOf([0, 2, 2, 0]), 4)).not.toThrow();
  });
});

/**
 * An f64 forward that goes token by token (as the LCKV paper defines the model), independent of the
 * engine: layer l attends to the keys and values layer source[l] computed for earlier tokens (and
 * for this token too, unless its diagonal is masked); a row with nothing to attend to gives zeros.
 */
function referenceForward(c: LlamaConfig, w: Map<string, Float32Array>, ids: number[]): Float64Array[] {
  const map = c.kvLayerMap!;
  const { hiddenSize: D, nHeads: H, nKVHeads: KV, headDim: hd } = c;
  const inv = ropeInvFrequencies(c);
  const get = (n: string) => w.get(n)!;
  const linear = (x: Float64Array, name: string, outF: number): Float64Array => {
    const W = get(`${name}.weight`);
    const inF = x.length;
    return Float64Array.from({ length: outF }, (_, o) => x.reduce((s, v, i) => s + W[o * inF + i] * v, 0));
  };
  const norm = (x: Float64Array, name: string) => {
    const g = get(name);
    const ms = x.reduce((s, v) => s + v * v, 0) / x.length;
    return x.map((v, i) => (v / Math.sqrt(ms + c.rmsNormEps)) * g[i]);
  };
  const rope = (v: Float64Array, heads: number, pos: number) => {
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < hd / 2; i++) {
        const [a, b, th] = [v[h * hd + i], v[h * hd + i + hd / 2], pos * inv[i]];
        v[h * hd + i] = a * Math.cos(th) - b * Math.sin(th);
        v[h * hd + i + hd / 2] = b * Math.cos(th) + a * Math.sin(th);
      }
    return v;
  };
  const keys: Float64Array[][] = map.source.map(() => []);
  const values: Float64Array[][] = map.source.map(() => []);
  const E = get('model.embed_tokens.weight');
  return ids.map((id, pos) => {
    let x = Float64Array.from(E.subarray(id * D, (id + 1) * D));
    map.source.forEach((src, l) => {
      const p = `model.layers.${l}.`;
      const h = norm(x, `${p}input_layernorm.weight`);
      const q = rope(linear(h, `${p}self_attn.q_proj`, H * hd), H, pos);
      if (map.source.includes(l)) {
        keys[l].push(rope(linear(h, `${p}self_attn.k_proj`, KV * hd), KV, pos));
        values[l].push(linear(h, `${p}self_attn.v_proj`, KV * hd));
      }
      const win = map.window[l];
      const visible = [...Array(pos + 1).keys()].filter((j) => (j < pos || !map.noDiagonal[l]) && (win === null || j > pos - win));
      const att = new Float64Array(H * hd);
      for (let hh = 0; hh < H && visible.length > 0; hh++) {
        const g = Math.floor(hh / (H / KV));
        const s = visible.map((j) => keys[src][j].subarray(g * hd, (g + 1) * hd).reduce((a, kv, i) => a + kv * q[hh * hd + i], 0) / Math.sqrt(hd));
        const m = Math.max(...s);
        const e = s.map((v) => Math.exp(v - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < hd; i++) att[hh * hd + i] = e.reduce((a, pj, n) => a + (pj / z) * values[src][visible[n]][g * hd + i], 0);
      }
      const x1 = x.map((v, i) => v + linear(att, `${p}self_attn.o_proj`, D)[i]);
      const h2 = norm(x1, `${p}post_attention_layernorm.weight`);
      const gate = linear(h2, `${p}mlp.gate_proj`, c.intermediateSize);
      const up = linear(h2, `${p}mlp.up_proj`, c.intermediateSize);
      const down = linear(
        gate.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]),
        `${p}mlp.down_proj`,
        D,
      );
      x = x1.map((v, i) => v + down[i]);
    });
    return linear(norm(x, 'model.norm.weight'), 'lm_head', c.vocabSize);
  });
}

const seed = freshRng().seed;

async function build(map: KVLayerMap) {
  const tiny = tinyModel({ num_hidden_layers: map.source.length, vocab_size: 320 }, 'F32', seed);
  const dir = await loadHFDir(tiny.files);
  const config = { ...parseConfig(dir.config), kvLayerMap: map };
  const backend = new CpuBackend();
  const model = new LlamaModel(config, backend, await loadLlamaWeights(backend, hfWeightSource(dir), config));
  const slots = kvSlots(map).count;
  const cache = new DenseKVCache({ backend, nLayers: slots, nKVHeads: config.nKVHeads, headDim: config.headDim, capacity: 32, dtype: 'f32' });
  return { tiny, config, model, cache };
}

const IDS = [1, 41, 55, 34, 26, 136, 287, 66, 40, 31, 7];

describe(`LlamaModel with a KV layer map, against a token-by-token f64 reference (seed ${seed})`, () => {
  for (const [name, map] of [
    ['LCKV: top layer KV, a warm-up layer', mapOf([0, 3, 3, 3])],
    ['CLA: pairs of layers share KV', mapOf([0, 0, 2, 2])],
    ['a layer reads a lower layer, sliding windows', mapOf([0, 0, 3, 3], [null, 3, 2, null])],
    ['every diagonal masked (force_nodiag)', { ...mapOf([0, 2, 2]), noDiagonal: [true, true, true] }],
  ] as const) {
    it(name, async () => {
      const { tiny, config, model, cache } = await build(map);
      const got = (await model.backend.read(model.forward(Int32Array.from(IDS), cache, { logits: 'all' }))) as Float32Array;
      const want = referenceForward(config, tiny.weights, IDS);
      for (let t = 0; t < IDS.length; t++) expect(maxAbsDiff(got.subarray(t * 320, (t + 1) * 320), want[t])).toBeLessThan(2e-4);
      // Decoding after the prompt continues exactly.
      cache.truncate(6);
      for (let t = 6; t < IDS.length; t++) {
        const step = (await model.backend.read(model.forward(Int32Array.from([IDS[t]]), cache))) as Float32Array;
        expect(maxAbsDiff(step, want[t])).toBeLessThan(2e-4);
      }
    });
  }

  it('loads no k/v weights for layers that compute none, and counts them out of parameters and KV bytes', async () => {
    const { config, model } = await build(mapOf([0, 3, 3, 3]));
    expect(model.layers.map((l) => l.k !== null)).toEqual([true, false, false, true]);
    const plain = { ...config, kvLayerMap: null };
    const kvProj = 2 * config.hiddenSize * config.nKVHeads * config.headDim;
    expect(parameterCount(plain) - parameterCount(config)).toBe(2 * kvProj);
    expect(kvBytesPerToken(config) / kvBytesPerToken(plain)).toBe(2 / 4);
  });

  it('goes token by token when a layer reads KV from above (the default schedule)', async () => {
    const { model } = await build(mapOf([0, 3, 3, 3]));
    expect(model.schedule.passTokens(50)).toBe(1);
    const { model: cla } = await build(mapOf([0, 0, 2, 2]));
    expect(cla.schedule.passTokens(50)).toBe(50);
  });
});
