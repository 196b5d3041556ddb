import { createPipeline, type GenerateOptions, type Pipeline } from '@lithe/core';
import { tinyModel } from '@lithe/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { chiSquare, referenceDistribution } from './testing/chi-square.js';
import type { SpeculativeStats } from './stats.js';
import { speculative, type SpeculativeOptions } from './speculative.js';

// A tiny vocabulary, so the joint distribution of two tokens has few enough cells to test: the
// models keep the tokenizer's 32000 rows, and a logits processor leaves only ids 0..7 possible.
const V = 8;
const seed = (Math.random() * 2 ** 31) >>> 0;
const config = { hidden_size: 32, intermediate_size: 64, num_attention_heads: 2, num_key_value_heads: 1 };
const target = tinyModel(config, 'F32', seed);
const draftModel = tinyModel(config, 'F32', seed + 1);
const pipelines: Pipeline[] = [];
afterAll(() => pipelines.forEach((p) => p.dispose()));
const open = async (model = target.files, plugins: Parameters<typeof createPipeline>[0]['plugins'] = []) => {
  const p = await createPipeline({ model, plugins, cacheSize: 32 });
  pipelines.push(p);
  return p;
};

// Every token appears with a successor, so prompt lookup always has something to propose.
const PROMPT = [1, 3, 4, 5, 0, 6, 7, 2, 3, 4, 6];
const sampling = { temperature: 0.9, topK: 6, topP: 0.95, minP: 0.03 };
const bias = (logits: Float32Array) => {
  logits.fill(-Infinity, V);
  logits[5] += 0.7;
};
const opts: GenerateOptions = { ...sampling, maxTokens: 4, stopOnEos: false, logitsProcessors: [bias] };

/** Exact P(t2, t3) of plain sampling: sum over t1 of p(t1) p(t2 | t1) p(t3 | t1, t2), from the target's logits. */
async function exactJoint(p: Pipeline): Promise<Float64Array> {
  const dist = async (ids: number[]) => {
    const cache = p.createCache(32);
    const logits = Float32Array.from((await p.backend.read(p.model.forward(Int32Array.from(ids), cache))) as Float32Array);
    cache.dispose();
    bias(logits);
    return referenceDistribution(logits, sampling);
  };
  const joint = new Float64Array(V * V);
  const p1 = await dist(PROMPT);
  for (let a = 0; a < V; a++) {
    if (p1[a] === 0) continue;
    const p2 = await dist([...PROMPT, a]);
    for (let b = 0; b < V; b++) {
      if (p2[b] === 0) continue;
      const p3 = await dist([...PROMPT, a, b]);
      for (let c = 0; c < V; c++) joint[b * V + c] += p1[a] * p2[b] * p3[c];
    }
  }
  return joint;
}

async function observedJoint(p: Pipeline, n: number, seed0: number): Promise<{ counts: Float64Array; stats: SpeculativeStats[] }> {
  const counts = new Float64Array(V * V);
  const stats: SpeculativeStats[] = [];
  for (let s = 0; s < n; s++) {
    const r = await p.generate(PROMPT, { ...opts, seed: seed0 + s }).result;
    counts[r.tokenIds[1] * V + r.tokenIds[2]]++;
    if (r.stats) stats.push(r.stats.speculative as SpeculativeStats);
  }
  return { counts, stats };
}

describe(`sampling with speculation has exactly the target's distribution (tiny-vocabulary random models, seed ${seed})`, () => {
  const N = 3000;
  const cases: [string, () => Promise<SpeculativeOptions['draft']>][] = [
    ['a draft model (rejection sampling with q)', () => open(draftModel.files)],
    ['prompt lookup (deterministic drafts)', async () => 'prompt-lookup'],
  ];
  for (const [name, draft] of cases) {
    it(`${name}: chi-square over the joint of two drafted positions, p = 1e-4`, async () => {
      const spec = await open(target.files, [speculative({ draft: await draft(), tokens: 2 })]);
      const expected = await exactJoint(spec);
      const { counts, stats } = await observedJoint(spec, N, seed);
      const { statistic, critical, df } = chiSquare(counts, expected);
      expect(statistic, `chi-square ${statistic.toFixed(1)} over ${df} degrees of freedom`).toBeLessThan(critical);
      // The draft really was used, and rejected sometimes: the correction step was exercised.
      const drafted = stats.reduce((s, x) => s + x.drafted, 0);
      const accepted = stats.reduce((s, x) => s + x.accepted, 0);
      expect(drafted).toBeGreaterThan(N);
      expect(accepted).toBeGreaterThan(0.03 * drafted);
      expect(accepted).toBeLessThan(0.9 * drafted);
    }, 600_000);
  }
});
