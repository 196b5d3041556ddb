import type { KVLayerMap } from '@lithe/core';

/** One layer of an LCKV `layer_types` string: the layer whose KV it uses, and whether it slides. */
export interface LayerType {
  kvLayer: number;
  sliding: boolean;
}

/**
 * Parses whyNLP/LCKV's `layer_types` ("0_1_5_5_5_5", "0_0_2_2_4s_4s"): the i-th integer is the layer
 * whose keys and values layer i uses; an `s` suffix marks a sliding-window layer. Checks it the way
 * the reference does, and that a layer others read reads its own keys and values.
 */
export function parseLayerTypes(layerTypes: string, nLayers: number): LayerType[] {
  const where = `config.json: layer_types '${layerTypes}'`;
  const parts = layerTypes.split('_');
  const types = parts.map((p, i) => {
    const m = /^(\d+)(s?)$/.exec(p);
    if (!m) throw new Error(`${where}: entry ${i} ('${p}') is not a layer index with an optional 's' (sliding window)`);
    return { kvLayer: Number(m[1]), sliding: m[2] === 's' };
  });
  if (types.length !== nLayers) throw new Error(`${where} has ${types.length} entries; num_hidden_layers is ${nLayers}, one entry per layer`);
  types.forEach((t, i) => {
    if (t.kvLayer >= nLayers) throw new Error(`${where}: layer ${i} uses the KV of layer ${t.kvLayer}, but the model has layers 0 to ${nLayers - 1}`);
    const own = types[t.kvLayer].kvLayer;
    if (own !== t.kvLayer) throw new Error(`${where}: layer ${i} uses the KV of layer ${t.kvLayer}, which itself uses layer ${own}; a layer whose KV others use must use its own`);
  });
  return types;
}

/**
 * The KV layer map of a layer_types list: a layer whose KV layer lies above it (or every layer with
 * force_nodiag) does not see the current token; `s` layers slide over `slidingWindow` tokens.
 */
export function kvLayerMapOf(types: readonly LayerType[], slidingWindow: number | null, forceNoDiag = false): KVLayerMap {
  return {
    source: types.map((t) => t.kvLayer),
    noDiagonal: types.map((t, i) => forceNoDiag || t.kvLayer > i),
    window: types.map((t) => (t.sliding ? slidingWindow : null)),
  };
}
