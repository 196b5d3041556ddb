/** How KV values are stored: code width and whether a zero point is kept. */
export type KvQuantMode = 'asymmetric' | 'symmetric';

export interface KvQuantOptions {
  bits: 8 | 4;
  /** 'asymmetric' (default): lmdeploy's scale and zero point; 'symmetric': torchao's absmax scale. */
  mode?: KvQuantMode;
}

/** The KV cache kinds this package provides; each is also the attention kernel variant that reads it. */
export type KvQuantKind = 'int8-asym' | 'int8-sym' | 'int4-asym' | 'int4-sym';

/** A resolved storage format, shared by the cache, the quantizer and the attention kernels. */
export interface KvQuantFormat {
  readonly kind: KvQuantKind;
  readonly bits: 8 | 4;
  readonly mode: KvQuantMode;
  /** Largest code: 2^bits − 1 (asymmetric, codes 0..qmax) or 2^(bits−1) − 1 (symmetric, codes −qmax..qmax). */
  readonly qmax: number;
  /** f16 values stored per token per KV head: scale and zero (asymmetric) or scale (symmetric). */
  readonly paramsPerHead: 1 | 2;
}

export function kvQuantFormat(options: KvQuantOptions): KvQuantFormat {
  const bits = options?.bits;
  const mode = options?.mode ?? 'asymmetric';
  if (bits !== 8 && bits !== 4) throw new Error(`kv-quant: bits must be 8 or 4, got ${String(bits)}`);
  if (mode !== 'asymmetric' && mode !== 'symmetric') throw new Error(`kv-quant: mode must be 'asymmetric' or 'symmetric', got '${String(mode)}'`);
  const asym = mode === 'asymmetric';
  return {
    kind: `int${bits}-${asym ? 'asym' : 'sym'}`,
    bits,
    mode,
    qmax: asym ? 2 ** bits - 1 : 2 ** (bits - 1) - 1,
    paramsPerHead: asym ? 2 : 1,
  };
}

/** Values accepted by the CLI's `--kv-quant` flag. */
export const KV_QUANT_FLAG_VALUES = ['int8', 'int4', 'int8-sym', 'int4-sym', 'none'] as const;

/**
 * Reads a `--kv-quant` value: 'int8' and 'int4' are asymmetric (lmdeploy), '-sym' variants symmetric
 * (torchao); 'none' (or 'fp', 'off') means the dense cache and returns null.
 */
export function parseKvQuantFlag(value: string): KvQuantOptions | null {
  const v = value.trim().toLowerCase();
  if (v === 'none' || v === 'fp' || v === 'off' || v === 'fp32' || v === 'f32') return null;
  const m = /^int(8|4)(?:-(asym|asymmetric|sym|symmetric))?$/.exec(v);
  if (!m) throw new Error(`--kv-quant must be one of ${KV_QUANT_FLAG_VALUES.join(', ')}; got '${value}'`);
  return { bits: Number(m[1]) as 8 | 4, mode: m[2]?.startsWith('sym') ? 'symmetric' : 'asymmetric' };
}

/**
 * Exact bytes of a quantized cache: per layer, token and KV head, codes for K and V (headDim bytes
 * at 8 bits, headDim / 2 at 4 bits) plus their f16 scale (and zero). Matches `QuantizedKVCache.bytes`.
 */
export function quantizedKVBytes(shape: { nLayers: number; nKVHeads: number; headDim: number; capacity: number }, format: KvQuantFormat): number {
  const perHead = (shape.headDim * format.bits) / 8 + 2 * format.paramsPerHead;
  return 2 * shape.nLayers * shape.capacity * shape.nKVHeads * perHead;
}
