export { kvQuant } from './kv-quant.js';
export {
  kvQuantFormat,
  parseKvQuantFlag,
  quantizedKVBytes,
  KV_QUANT_FLAG_VALUES,
  type KvQuantFormat,
  type KvQuantKind,
  type KvQuantMode,
  type KvQuantOptions,
} from './format.js';
export { QuantizedKVCache, QuantizedKVLayer, isQuantizedLayer } from './quantized-kv-cache.js';
export { attentionQuantized } from './kernels/cpu-attention.js';
export { attentionQuantizedWebGpu, quantizeWebGpu } from './kernels/webgpu.js';
export { quantizeRow, dequantizeRow, unpackCodes, rowAffine, rowScale } from './quantize.js';
