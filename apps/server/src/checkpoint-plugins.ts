import type { LithePlugin } from '@lithe/core';
import { awq, awqOptionsFromConfig } from '@lithe/awq';
import { gptq, gptqOptionsFromConfig } from '@lithe/gptq';
import { lckv, type PrefillMode } from '@lithe/lckv';
import { nf4 } from '@lithe/nf4';
import { readModelJson } from './model-json.js';

/**
 * The plugins a checkpoint needs before it loads at all, read from its config.json: nf4() for 4-bit
 * bitsandbytes weights, gptq() / awq() for AutoGPTQ / AutoAWQ ones, lckv() for an LCKV model
 * (`model_type: "lckv-llama"`). The server and the CLI add them by themselves; a GGUF needs none.
 */
export async function checkpointPlugins(model: string, opts: { lckvPrefill?: PrefillMode } = {}): Promise<LithePlugin[]> {
  const config = await readModelJson(model, 'config.json');
  const plugins: LithePlugin[] = [];
  if ((config?.quantization_config as { quant_method?: unknown } | undefined)?.quant_method === 'bitsandbytes') plugins.push(nf4());
  const gptqOptions = gptqOptionsFromConfig(config);
  if (gptqOptions) plugins.push(gptq(gptqOptions));
  const awqOptions = awqOptionsFromConfig(config);
  if (awqOptions) plugins.push(awq(awqOptions));
  if (config?.model_type === 'lckv-llama') plugins.push(lckv({ prefill: opts.lckvPrefill }));
  else if (opts.lckvPrefill) throw new Error(`--lckv-prefill applies to LCKV models (config.json model_type 'lckv-llama'); ${model} is not one`);
  return plugins;
}
