import { definePlugin, GroupedIntLinear, type LithePlugin, type WeightSource } from '@lithe/core';
import { fromAutoAwq, type AutoAwqTensors } from './checkpoint.js';

export interface AwqLoadOptions {
  /** quantization_config.group_size (default 128). */
  groupSize?: number;
}

/** The loader options a config.json's quantization_config implies, or null when it is not AWQ. */
export function awqOptionsFromConfig(config: Record<string, unknown> | null | undefined): AwqLoadOptions | null {
  const q = config?.quantization_config as Record<string, unknown> | undefined;
  if (!q || q.quant_method !== 'awq') return null;
  const version = String(q.version ?? 'gemm').toLowerCase();
  if (version !== 'gemm') throw new Error(`awq: quantization_config.version '${version}' is not supported; lithe reads AutoAWQ's GEMM layout ("gemm")`);
  if ((q.bits ?? q.w_bit ?? 4) !== 4) throw new Error(`awq: ${String(q.bits ?? q.w_bit)}-bit AWQ is not supported; AutoAWQ's GEMM layout is 4-bit`);
  if (q.zero_point === false) throw new Error('awq: checkpoints without zero points (zero_point: false) are not supported');
  const groupSize = q.group_size ?? q.q_group_size;
  return { groupSize: typeof groupSize === 'number' ? groupSize : 128 };
}

async function read(source: WeightSource, name: string, dtype: 'i32' | 'f16', what: string): Promise<Int32Array | Uint16Array> {
  const info = source.info(name);
  if (!info) throw new Error(`awq: '${what}' is stored as AWQ but '${name}' is missing`);
  if (info.dtype !== dtype) throw new Error(`awq: '${name}' is ${info.dtype}, expected ${dtype}`);
  const bytes = (await source.read(name)).slice();
  return dtype === 'i32' ? new Int32Array(bytes.buffer, 0, bytes.length / 4) : new Uint16Array(bytes.buffer, 0, bytes.length / 2);
}

/**
 * AWQ checkpoints (AutoAWQ's GEMM layout): each linear stored as qweight / qzeros / scales loads
 * as a `GroupedIntLinear` in core's grouped int format (the one GPTQ checkpoints use), repacked
 * once; its kernel dequantizes inside the product.
 */
export const awq = definePlugin((options: AwqLoadOptions | void): LithePlugin => {
  const groupSize = options?.groupSize ?? 128;
  return {
    name: 'awq',
    async loadWeight(req, source, ctx) {
      if (req.role !== 'linear' && req.role !== 'lm_head') return undefined;
      const prefix = req.name.replace(/\.weight$/, '');
      if (!source.info(`${prefix}.qweight`)) return undefined;
      const t: AutoAwqTensors = {
        qweight: (await read(source, `${prefix}.qweight`, 'i32', prefix)) as Int32Array,
        qzeros: (await read(source, `${prefix}.qzeros`, 'i32', prefix)) as Int32Array,
        scales: (await read(source, `${prefix}.scales`, 'f16', prefix)) as Uint16Array,
      };
      const [outF, inF] = req.shape;
      return GroupedIntLinear.fromData(prefix, ctx.backend, fromAutoAwq(t, outF, inF, groupSize, prefix), req.bias ?? null);
    },
  };
});
