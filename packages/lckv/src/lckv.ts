import { definePlugin, type LlamaConfig } from '@lithe/core';
import { lckvSchedule, type PrefillMode } from './iteration-plan.js';
import { readLckvConfig, type LckvSettings } from './lckv-config.js';

export interface LckvOptions {
  /** Prompt encoding: 'iterative' (the paper's parallel pass) or 'sequential' (exact, token by token); default: the config's use_sequential. */
  prefill?: PrefillMode;
}

const PREFILL_MODES: readonly PrefillMode[] = ['iterative', 'sequential'];

// The settings of each config this plugin read, for patchModel (configs are immutable and per pipeline).
const settingsOf = new WeakMap<LlamaConfig, LckvSettings>();

/** The LCKV settings behind a config the lckv() plugin read, or undefined for any other config. */
export function lckvSettingsOf(config: LlamaConfig): LckvSettings | undefined {
  return settingsOf.get(config);
}

const lckvPlugin = definePlugin((options: LckvOptions) => {
  if (options.prefill !== undefined && !PREFILL_MODES.includes(options.prefill)) {
    throw new Error(`lckv: prefill must be one of ${PREFILL_MODES.join(', ')}; got '${String(options.prefill)}'`);
  }
  return {
    name: 'lckv',
    readConfig(raw, parse) {
      if (raw.model_type !== 'lckv-llama') return undefined;
      const { config, settings } = readLckvConfig(raw, parse);
      settingsOf.set(config, settings);
      return config;
    },
    patchModel(model) {
      const s = settingsOf.get(model.config);
      if (!s || !model.config.kvLayerMap) return;
      model.schedule = lckvSchedule(model.config.kvLayerMap, options.prefill ?? s.prefill, s.forwardPasses, s.backwardPasses);
    },
  };
});

/**
 * The lckv plugin: loads whyNLP/LCKV checkpoints (`model_type: "lckv-llama"`) and runs them with
 * core's KV layer map, so only the layers that compute keys and values have a cache.
 *
 * ```ts
 * const pipeline = await createPipeline({ model: './tiny-brown-lckv', plugins: [lckv({ prefill: 'sequential' })] });
 * ```
 *
 * It claims no cache of its own: the cache the pipeline builds (core's dense one, or kv-quant's and
 * whatever wraps it) simply has fewer layers, so it composes with any cache plugin.
 */
export const lckv = (options: LckvOptions = {}) => lckvPlugin(options);
