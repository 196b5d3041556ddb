import { Sampler, createPipeline, type DecodeState } from '@lithe/core';
import { freshRng, tinyModel } from '@lithe/core/testing';
import { describe, expect, it } from 'vitest';
import { ModelDrafter } from './model-drafter.js';

const rng = freshRng();
const model = tinyModel({ hidden_size: 64, intermediate_size: 96 }, 'F32', rng.seed, { neverEos: true });

describe(`the model drafter proposes the draft's own greedy continuation, across rollbacks (seed ${rng.seed})`, () => {
  it('catches up on accepted tokens and forgets rolled-back ones', async () => {
    const p = await createPipeline({ model: model.files, backend: 'cpu', cacheSize: 96 });
    const greedy = async (ids: number[], n: number) => (await p.generate(ids, { temperature: 0, maxTokens: n, stopOnEos: false }).result).tokenIds;
    const drafter = new ModelDrafter('model', p.model, (c) => p.createCache(c));
    const sampler = new Sampler({ temperature: 0 }, p.config.vocabSize);
    const ends: (() => void)[] = [];
    const tokens = p.encode('Once upon a time there');
    const state = {
      tokens,
      cache: { capacity: 96 },
      greedy: true,
      distribution: (l: Float32Array, ctx: readonly number[], out?: Float64Array) => sampler.distribution(l, ctx, out),
      onEnd: (fn: () => void) => ends.push(fn),
    } as unknown as DecodeState;

    for (let round = 0; round < 6; round++) {
      const k = 1 + Math.floor(rng.uniform() * 5);
      const { ids } = await drafter.propose(state, k);
      expect(ids).toEqual(await greedy(tokens, k));
      // Keep a random prefix of the draft plus a random token, as verification would.
      const keep = Math.floor(rng.uniform() * (k + 1));
      drafter.rollback(state, tokens.length + keep);
      tokens.push(...ids.slice(0, keep), 3 + Math.floor(rng.uniform() * 30000));
    }
    expect(ends).toHaveLength(1); // one cache per generation, returned at its end
    ends[0]();
    drafter.dispose();
    p.dispose();
  });
});
