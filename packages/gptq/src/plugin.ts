import { definePlugin, GroupedIntLinear, type LithePlugin, type WeightSource } from '@lithe/core';
import { fromAutoGptq, gptqTensorNames, type AutoGptqTensors, type CheckpointFormat } from './checkpoint.js';

export interface GptqLoadOptions {
  /** quantization_config.group_size (-1: per-channel); default: inferred from the scales' shape. */
  groupSize?: number;
  /** quantization_config.checkpoint_format: 'gptq' (AutoGPTQ, zeros − 1, default) or 'gptq_v2'. */
  format?: CheckpointFormat;
}

/** The loader options a config.json's quantization_config implies, or null when it is not GPTQ. */
export function gptqOptionsFromConfig(config: Record<string, unknown> | null | undefined): GptqLoadOptions | null {
  const q = config?.quantization_config as Record<string, unknown> | undefined;
  if (!q || q.quant_method !== 'gptq') return null;
  const format = (q.checkpoint_format ?? 'gptq') as string;
  if (format !== 'gptq' && format !== 'gptq_v2') throw new Error(`gptq: checkpoint_format '${format}' is not supported; supported: gptq, gptq_v2`);
  const groupSize = typeof q.group_size === 'number' ? q.group_size : undefined;
  return { groupSize, format };
}

async function readTyped(source: WeightSource, name: string, dtype: 'i32' | 'f16', what: string): Promise<Int32Array | Uint16Array> {
  const info = source.info(name);
  if (!info) throw new Error(`gptq: '${what}' is stored as GPTQ but '${name}' is missing`);
  if (info.dtype !== dtype) throw new Error(`gptq: '${name}' is ${info.dtype}, expected ${dtype}`);
  const bytes = (await source.read(name)).slice();
  return dtype === 'i32' ? new Int32Array(bytes.buffer, 0, bytes.length / 4) : new Uint16Array(bytes.buffer, 0, bytes.length / 2);
}

/**
 * GPTQ checkpoints (AutoGPTQ / transformers layout, and what `quantizeModelDir` writes): each
 * linear stored as qweight / qzeros / scales / g_idx loads as a `GroupedIntLinear` in core's
 * grouped int format, repacked once; its kernel dequantizes inside the product.
 */
export const gptq = definePlugin((options: GptqLoadOptions | void): LithePlugin => {
  const o = options ?? {};
  return {
    name: 'gptq',
    async loadWeight(req, source, ctx) {
      if (req.role !== 'linear' && req.role !== 'lm_head') return undefined;
      const prefix = req.name.replace(/\.weight$/, '');
      const names = gptqTensorNames(prefix);
      if (!source.info(names.qweight)) return undefined;
      const t: AutoGptqTensors = {
        qweight: (await readTyped(source, names.qweight, 'i32', prefix)) as Int32Array,
        qzeros: (await readTyped(source, names.qzeros, 'i32', prefix)) as Int32Array,
        scales: (await readTyped(source, names.scales, 'f16', prefix)) as Uint16Array,
        gIdx: source.info(names.g_idx) ? ((await readTyped(source, names.g_idx, 'i32', prefix)) as Int32Array) : new Int32Array(0),
      };
      const [outF, inF] = req.shape;
      const data = fromAutoGptq(t, outF, inF, { format: o.format, groupSize: o.groupSize, what: prefix });
      return GroupedIntLinear.fromData(prefix, ctx.backend, data, req.bias ?? null);
    },
  };
});
