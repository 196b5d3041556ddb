import { describe, expect, it } from 'vitest';
import { calibrationWindows, createPipeline, GroupedIntLinear, type Pipeline } from '@lithe/core';
import { freshRng, maxAbsDiff, modelFromWeights, tinyModel } from '@lithe/core/testing';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { AWQ_GROUPS, canScale, foldScales } from './fold.js';
import { awqQuantize, fakeQuantize } from './quantizer.js';
import { awqQuantizeModel, type AwqBlockReport } from './quantize-model.js';
import { activationScales, InputStats, scaledFakeQuantize, searchClip, weightMeans } from './search.js';

const rng = freshRng();
const root = await mkdtemp(join(tmpdir(), 'lithe-awq-search-'));
afterAll(() => rm(root, { recursive: true, force: true }));

async function load(tiny: ReturnType<typeof tinyModel>, name: string): Promise<Pipeline> {
  const dir = join(root, name);
  tiny.write(dir);
  return createPipeline({ model: dir, backend: 'cpu', dtype: 'f32', kvDtype: 'f32', cacheSize: 64 });
}

async function logits(p: Pipeline, ids: Int32Array): Promise<Float32Array> {
  return Float32Array.from((await p.backend.read(p.model.forward(ids, p.createCache(64), { logits: 'all' }))) as Float32Array);
}

const randomIds = (n: number, r = rng) => Int32Array.from({ length: n }, () => 3 + Math.floor(r.uniform() * 31990));

describe(`AWQ's quantizer and searches (seed ${rng.seed})`, () => {
  it('quantizes each group within half a step, exactly on grid values, and clips', () => {
    const w = Float32Array.from({ length: 4 * 96 }, () => rng.normal());
    const q = awqQuantize(w, 4, 96, 32);
    const deq = fakeQuantize(w, 4, 96, 32);
    for (let o = 0; o < 4; o++) {
      for (let g = 0; g < 3; g++) {
        const row = Array.from(w.subarray(o * 96 + g * 32, o * 96 + g * 32 + 32));
        const step = (Math.max(...row) - Math.min(...row)) / 15;
        for (let i = 0; i < 32; i++) expect(Math.abs(deq[o * 96 + g * 32 + i] - row[i])).toBeLessThanOrEqual(step * 0.51 + 1e-6);
      }
    }
    expect(Math.max(...q.codes)).toBeLessThanOrEqual(15);
    // Values already on a 4-bit grid with a zero point come back exactly.
    const grid = Float32Array.from({ length: 32 }, (_, i) => 0.25 * ((i % 16) - 5));
    expect(Array.from(fakeQuantize(grid, 1, 32, 32))).toEqual(Array.from(grid));
    // A clip of 0.5 quantizes the clamped weights.
    const clamped = w.map((v) => Math.max(-0.5, Math.min(0.5, v)));
    expect(Array.from(awqQuantize(w, 4, 96, 32, new Float32Array(12).fill(0.5)).codes)).toEqual(Array.from(awqQuantize(clamped, 4, 96, 32).codes));
  });

  it('scales are mean|x|^α normalised; α = 0 is round-to-nearest', () => {
    const mean = Float64Array.from({ length: 64 }, () => 0.1 + rng.uniform() * 5);
    const s = activationScales(mean, 0.5);
    const max = Math.max(...s), min = Math.min(...s);
    expect(max * min).toBeCloseTo(1, 5);
    for (let i = 0; i < 64; i++) expect(s[i] / s[0]).toBeCloseTo(Math.sqrt(mean[i] / mean[0]), 4);
    const w = Float32Array.from({ length: 8 * 64 }, () => rng.normal());
    expect(Array.from(scaledFakeQuantize(w, 8, 64, 32, activationScales(mean, 0)))).toEqual(Array.from(fakeQuantize(w, 8, 64, 32)));
  });

  it("duo scaling divides by the weights' group-normalised mean |w|^(1−α), over every linear of the group", () => {
    const inF = 64;
    const G = 16;
    const ws = [3, 5].map((outF) => ({ outF, w: Float32Array.from({ length: outF * inF }, () => rng.normal()) }));
    const wMean = weightMeans(ws, inF, G);
    // Direct: each weight over its (row, group)'s max |w|, averaged over all 8 rows.
    for (let i = 0; i < inF; i++) {
      let sum = 0;
      for (const { w, outF } of ws) {
        for (let o = 0; o < outF; o++) {
          const g = Math.floor(i / G) * G;
          const max = Math.max(...Array.from(w.subarray(o * inF + g, o * inF + g + G), Math.abs));
          sum += Math.abs(w[o * inF + i]) / max;
        }
      }
      expect(wMean[i]).toBeCloseTo(sum / 8, 5);
    }
    const mean = Float64Array.from({ length: inF }, () => 0.1 + rng.uniform() * 5);
    const s = activationScales(mean, 0.3, wMean);
    for (let i = 0; i < inF; i++) {
      const want = (j: number) => mean[j] ** 0.3 / (wMean[j] ** 0.7 + 1e-4);
      expect(s[i] / s[0]).toBeCloseTo(want(i) / want(0), 4);
    }
  });

  it("the clip search's error is each group's output error on the calibration rows, and it never loses to no clip", () => {
    const inF = 64, outF = 6, G = 32, rows = 40;
    const x = Float32Array.from({ length: rows * inF }, () => rng.normal());
    const st = new InputStats(inF, G);
    st.add(x.subarray(0, 25 * inF), 25);
    st.add(x.subarray(25 * inF), 15);
    expect(st.meanAbs()[3]).toBeCloseTo(Array.from({ length: rows }, (_, r) => Math.abs(x[r * inF + 3])).reduce((a, b) => a + b) / rows, 6);
    // Heavy-tailed weights, where clipping helps.
    const w = Float32Array.from({ length: outF * inF }, () => rng.normal() ** 3);
    const ones = new Float32Array(inF).fill(1);
    const clip = searchClip(w, outF, inF, st, ones);
    // Each group's share of the output error (AutoAWQ's clip search scores groups one by one).
    const outErr = (deq: Float32Array) => {
      let e = 0;
      for (let r = 0; r < rows; r++) {
        for (let o = 0; o < outF; o++) {
          for (let g = 0; g < inF; g += G) {
            let d = 0;
            for (let i = g; i < g + G; i++) d += x[r * inF + i] * (w[o * inF + i] - deq[o * inF + i]);
            e += d * d;
          }
        }
      }
      return e;
    };
    const clipped = new Float32Array(outF * inF), plain = fakeQuantize(w, outF, inF, G);
    for (let o = 0; o < outF; o++) {
      for (let g = 0; g < 2; g++) {
        const from = o * inF + g * G;
        const c = clip[o * 2 + g];
        const group = w.subarray(from, from + G).map((v) => Math.max(-c, Math.min(c, v)));
        clipped.set(fakeQuantize(group, 1, G, G), from);
      }
    }
    expect(outErr(clipped)).toBeLessThanOrEqual(outErr(plain) * (1 + 1e-9));
    expect(Array.from(clip).some((c, k) => c < Math.max(...Array.from(w.subarray(Math.floor(k / 2) * inF + (k % 2) * G, Math.floor(k / 2) * inF + (k % 2) * G + G), Math.abs)))).toBe(true);
  });
});

describe(`folding AWQ's scales (seed ${rng.seed})`, () => {
  for (const [name, overrides] of [
    ['llama, multi-head (v before o folds)', { num_key_value_heads: 4 }],
    ['qwen2 biases, grouped-query', { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', num_key_value_heads: 2 }],
  ] as const) {
    it(`${name}: leaves the full-precision logits unchanged`, async () => {
      const p = await load(tinyModel(overrides, 'F32', rng.seed), `fold-${overrides.num_key_value_heads}`);
      const ids = randomIds(13);
      const before = await logits(p, ids);
      let folded = 0;
      p.model.layers.forEach((layer, l) => {
        for (const group of AWQ_GROUPS) {
          if (!canScale(layer, group)) {
            expect(() => foldScales(layer, l, group, new Float32Array(64).fill(2))).toThrow(/block \d's o cannot be scaled: v has 32 outputs and o 64 inputs \(grouped-query attention\)/);
            continue;
          }
          const width = group === 'down' ? 96 : 64;
          foldScales(layer, l, group, Float32Array.from({ length: width }, () => Math.exp(2 * rng.normal())));
          folded++;
        }
      });
      expect(folded).toBe(overrides.num_key_value_heads === 4 ? 8 : 6);
      const after = await logits(p, ids);
      const scale = before.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(maxAbsDiff(before, after) / scale).toBeLessThan(2e-5);
      p.dispose();
    });
  }
});

describe(`AWQ against round-to-nearest on a model with outlier input channels (seed ${rng.seed})`, () => {
  it('has a smaller output error, chooses α > 0 where the outliers are, and reports it', async () => {
    const tiny = tinyModel({ num_hidden_layers: 2 }, 'F32', rng.seed);
    // Plant a few input channels with 12x larger activations: the norm weights that make them.
    const values = new Map(tiny.weights);
    const outliers = [3, 17, 42];
    for (const [name, v] of values) {
      if (!/layernorm\.weight$/.test(name)) continue;
      const w = v.slice();
      for (const c of outliers) w[c] *= 12;
      values.set(name, w);
    }
    const planted = modelFromWeights(tiny.config, values);
    const windows = calibrationWindows(randomIds(800, freshRng(rng.seed + 1)), 12, 32);
    // Scored on three sequences the search never saw: one short sequence can favour either.
    const evalRng = freshRng(rng.seed + 2);
    const evalSeqs = Array.from({ length: 3 }, () => randomIds(48, evalRng));
    const logitsOf = async (p: Pipeline) => {
      const rows: Float32Array[] = [];
      for (const ids of evalSeqs) rows.push(await logits(p, ids));
      const all = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
      rows.reduce((at, r) => (all.set(r, at), at + r.length), 0);
      return all;
    };
    const full = await load(planted, 'planted');
    const ref = await logitsOf(full);
    full.dispose();
    const errorOf = async (method: 'awq' | 'rtn') => {
      const p = await load(planted, `planted-${method}`);
      const reports: AwqBlockReport[] = [];
      await awqQuantizeModel(p.model, method === 'awq' ? windows : null, { method, groupSize: 32, onBlock: (r) => reports.push(r) });
      expect(p.model.layers[1].down).toBeInstanceOf(GroupedIntLinear);
      const got = await logitsOf(p);
      p.dispose();
      let e = 0;
      for (let i = 0; i < ref.length; i++) e += (got[i] - ref[i]) ** 2;
      return { mse: e / ref.length, reports };
    };
    const rtn = await errorOf('rtn');
    const awq = await errorOf('awq');
    console.log(`seed ${rng.seed}: logits MSE rtn ${rtn.mse.toExponential(3)}, awq ${awq.mse.toExponential(3)}; α per block ${JSON.stringify(awq.reports.map((r) => r.alpha))}`);
    expect(awq.mse).toBeLessThan(rtn.mse);
    expect(awq.reports.map((r) => r.layer)).toEqual([0, 1]);
    for (const r of awq.reports) {
      expect(r.alpha.o).toBeNull(); // grouped-query attention: o is not scaled
      expect(r.alpha.qkv).toBeGreaterThan(0);
      expect(r.alpha.gateUp).toBeGreaterThan(0);
      for (const g of ['qkv', 'gateUp', 'down'] as const) expect(r.loss[g]!.best).toBeLessThanOrEqual(r.loss[g]!.rtn);
    }
  });

  it('explains what it cannot quantize', async () => {
    const p = await load(tinyModel({}, 'F32', rng.seed), 'bad');
    await expect(awqQuantizeModel(p.model, null, { groupSize: 48 })).rejects.toThrow(/group size 48 does not divide the 64 inputs of model.layers.0.self_attn.q_proj/);
    await expect(awqQuantizeModel(p.model, null, { method: 'awq', groupSize: 32 })).rejects.toThrow(/AWQ needs calibration windows/);
    await expect(awqQuantizeModel(p.model, null, { method: 'gptq' as 'awq' })).rejects.toThrow(/method must be 'awq' or 'rtn'/);
    p.dispose();
  });
});
