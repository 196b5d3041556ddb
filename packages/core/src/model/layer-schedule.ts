import type { KVLayerMap } from './kv-layer-map.js';

/**
 * Layers [from, to) run `passes` times from the same input: every pass writes the keys and values
 * of these layers to the cache, only the last pass's hidden states go on to the next step. More
 * than one pass lets a group of layers that reads KV from above converge (LCKV's iterative prompt
 * encoding); before such a pass the new rows of layers read from below start as zeros.
 */
export interface LayerStep {
  readonly from: number;
  readonly to: number;
  readonly passes: number;
}

/**
 * How `LlamaModel.forward` walks the layers over a run of new tokens. A plugin's `patchModel` may
 * replace a model's schedule (`model.schedule = ...`).
 */
export interface LayerSchedule {
  /** The most tokens one pass over the layers takes, for a run of `tokens` (1: token by token). */
  passTokens(tokens: number): number;
  /** The steps of one pass over `tokens` new tokens. */
  steps(tokens: number): readonly LayerStep[];
}

/**
 * Every layer once. When some layer reads keys and values from a layer above it, a pass can only
 * be exact for one token at a time, so prompts then go token by token.
 */
export function defaultLayerSchedule(nLayers: number, map: KVLayerMap | null): LayerSchedule {
  const steps = [{ from: 0, to: nLayers, passes: 1 }];
  const upward = map?.source.some((s, i) => s > i) ?? false;
  return { passTokens: (tokens) => (upward ? 1 : tokens), steps: () => steps };
}
