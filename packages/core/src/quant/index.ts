export * from './formats.js';
export * from './quantize.js';
export * from './dequantize.js';
export * from './hf-quantized.js';
export * from './grouped-int.js';
