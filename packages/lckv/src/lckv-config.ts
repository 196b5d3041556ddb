import { checkKVLayerMap, type LlamaConfig } from '@lithe/core';
import { kvLayerMapOf, parseLayerTypes } from './layer-types.js';
import type { PrefillMode } from './iteration-plan.js';

/** The LCKV settings of a config.json besides the layer map (whyNLP/LCKV's LCKVLlamaConfig). */
export interface LckvSettings {
  layerTypes: string;
  /** m: passes of the iterative prompt encoding before the last ones. */
  forwardPasses: number;
  /** b: the last passes (with gradients when training). */
  backwardPasses: number;
  /** The config's prompt encoding: use_sequential. */
  prefill: PrefillMode;
  forceNoDiag: boolean;
  slidingWindow: number;
}

type Json = Record<string, unknown>;

function intAtLeast(raw: Json, key: string, fallback: number, min: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new Error(`config.json: '${key}' must be an integer >= ${min}, got ${JSON.stringify(raw[key])}`);
  return v;
}

function bool(raw: Json, key: string): boolean {
  const v = raw[key] ?? false;
  if (typeof v !== 'boolean') throw new Error(`config.json: '${key}' must be true or false, got ${JSON.stringify(raw[key])}`);
  return v;
}

/** Reads the LCKV fields of a config.json with the reference's defaults, checking each. */
export function lckvSettings(raw: Json, nLayers: number): LckvSettings {
  const lt = raw.layer_types ?? Array.from({ length: nLayers }, (_, i) => i).join('_');
  if (typeof lt !== 'string') throw new Error(`config.json: 'layer_types' must be a string such as "0_1_5_5_5_5", got ${JSON.stringify(lt)}`);
  return {
    layerTypes: lt,
    forwardPasses: intAtLeast(raw, 'forward_passes', 7, 0),
    backwardPasses: intAtLeast(raw, 'backward_passes', 2, 0),
    prefill: bool(raw, 'use_sequential') ? 'sequential' : 'iterative',
    forceNoDiag: bool(raw, 'force_nodiag'),
    slidingWindow: intAtLeast(raw, 'sliding_window', 4096, 1),
  };
}

/**
 * An 'lckv-llama' config.json as core's config: the Llama fields through core's reader, the layer
 * types as core's KV layer map (the window applies to `s` layers only, not to every layer).
 */
export function readLckvConfig(raw: Json, parse: (raw: Json) => LlamaConfig): { config: LlamaConfig; settings: LckvSettings } {
  const base = parse({ ...raw, model_type: 'llama', architectures: ['LlamaForCausalLM'], sliding_window: null });
  const settings = lckvSettings(raw, base.nLayers);
  const map = kvLayerMapOf(parseLayerTypes(settings.layerTypes, base.nLayers), settings.slidingWindow, settings.forceNoDiag);
  checkKVLayerMap(map, base.nLayers, `config.json: layer_types '${settings.layerTypes}'`);
  return { config: { ...base, modelType: 'lckv-llama', slidingWindow: null, kvLayerMap: map }, settings };
}
