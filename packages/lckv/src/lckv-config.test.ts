import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createPipeline, parseConfig } from '@lithe/core';
import { describe, expect, it } from 'vitest';
import { iterationPlan, lckvSchedule } from './iteration-plan.js';
import { readLckvConfig } from './lckv-config.js';
import { lckv } from './lckv.js';

const fixtures = fileURLToPath(new URL('../../../tooling/fixtures/models/', import.meta.url));
const raw = JSON.parse(readFileSync(`${fixtures}tiny-brown-lckv/config.json`, 'utf8')) as Record<string, unknown>;
const read = (over: Record<string, unknown>) => readLckvConfig({ ...raw, ...over }, (r) => parseConfig(r));

describe('lckv-llama config.json (whyNLP/LCKV LCKVLlamaConfig)', () => {
  it('reads layer_types into core\'s KV layer map and keeps the other settings', () => {
    const { config, settings } = read({});
    expect(config.modelType).toBe('lckv-llama');
    expect(config.kvLayerMap).toEqual({ source: [0, 1, 5, 5, 5, 5], noDiagonal: [false, false, true, true, true, false], window: [null, null, null, null, null, null] });
    expect(config.slidingWindow).toBeNull();
    expect(settings).toEqual({ layerTypes: '0_1_5_5_5_5', forwardPasses: 7, backwardPasses: 2, prefill: 'iterative', forceNoDiag: false, slidingWindow: 4096 });
  });

  it('slides only the layers marked s, masks every diagonal with force_nodiag, defaults as the reference', () => {
    const { config } = read({ layer_types: '0_0s_2s_2_4_4s', sliding_window: 64, force_nodiag: true });
    expect(config.kvLayerMap!.window).toEqual([null, 64, 64, null, null, 64]);
    expect(config.kvLayerMap!.noDiagonal).toEqual([true, true, true, true, true, true]);
    const defaults = read({ layer_types: undefined, forward_passes: undefined, backward_passes: undefined, use_sequential: true });
    expect(defaults.config.kvLayerMap!.source).toEqual([0, 1, 2, 3, 4, 5]);
    expect(defaults.settings).toMatchObject({ forwardPasses: 7, backwardPasses: 2, prefill: 'sequential' });
  });

  it('rejects layer_types and settings the reference rejects, saying what is wrong', () => {
    expect(() => read({ layer_types: '0_1_5_5_5' })).toThrow("layer_types '0_1_5_5_5' has 5 entries; num_hidden_layers is 6");
    expect(() => read({ layer_types: '0_1_6_6_6_6' })).toThrow('layer 2 uses the KV of layer 6, but the model has layers 0 to 5');
    expect(() => read({ layer_types: '0_1_5_5_5_4' })).toThrow('layer 2 uses the KV of layer 5, which itself uses layer 4');
    expect(() => read({ layer_types: '0_1_x_5_5_5' })).toThrow("entry 2 ('x') is not a layer index with an optional 's'");
    expect(() => read({ layer_types: [0, 1, 5, 5, 5, 5] })).toThrow("'layer_types' must be a string");
    expect(() => read({ forward_passes: -1 })).toThrow("'forward_passes' must be an integer >= 0, got -1");
    expect(() => read({ use_sequential: 'yes' })).toThrow("'use_sequential' must be true or false");
  });

  it('core without the plugin says which package reads it', async () => {
    expect(() => parseConfig(raw)).toThrow("model_type 'lckv-llama' is a Layer-Condensed KV cache model (whyNLP/LCKV): load it with the lckv() plugin from @lithe/lckv");
    await expect(createPipeline({ model: `${fixtures}tiny-brown-lckv` })).rejects.toThrow('the lckv() plugin from @lithe/lckv');
    expect(() => lckv({ prefill: 'parallel' as 'iterative' })).toThrow("lckv: prefill must be one of iterative, sequential; got 'parallel'");
  });
});

describe('the iterative prompt encoding plan (the reference iteration_plan)', () => {
  const map = (lt: string) => read({ layer_types: lt }).config.kvLayerMap!;
  it('iterates each group tied by reads from above m + b times, the rest once', () => {
    expect(iterationPlan(map('0_1_5_5_5_5'), 7, 2)).toEqual([
      { from: 0, to: 2, passes: 1 },
      { from: 2, to: 6, passes: 9 },
    ]);
    expect(iterationPlan(map('0_2_2_5_5_5'), 3, 0)).toEqual([
      { from: 0, to: 1, passes: 1 },
      { from: 1, to: 3, passes: 4 },
      { from: 3, to: 6, passes: 4 },
    ]);
    expect(iterationPlan(map('0_3_2_3_4_4'), 7, 2)).toEqual([
      { from: 0, to: 1, passes: 1 },
      { from: 1, to: 4, passes: 9 },
      { from: 4, to: 6, passes: 1 },
    ]);
    expect(iterationPlan(map('0_0_2_2_4_4'), 7, 2)).toEqual([{ from: 0, to: 6, passes: 1 }]);
  });

  it('goes token by token for sequential prompts, single tokens and runs up to m + b tokens', () => {
    const it = lckvSchedule(map('0_1_5_5_5_5'), 'iterative', 7, 2);
    expect([1, 9, 10, 300].map((t) => it.passTokens(t))).toEqual([1, 1, 10, 300]);
    expect(it.steps(1)).toEqual([{ from: 0, to: 6, passes: 1 }]);
    const seq = lckvSchedule(map('0_1_5_5_5_5'), 'sequential', 7, 2);
    expect(seq.passTokens(300)).toBe(1);
    expect(lckvSchedule(map('0_0_2_2_4_4'), 'sequential', 7, 2).passTokens(300)).toBe(300);
  });
});
