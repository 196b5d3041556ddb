// Browser-safe public API of @lithe/nf4. Quantizing a directory on disk is in './node'.
export { nf4, resolveNf4Options, isQuantizedWeight, type Nf4Options, type ResolvedNf4Options } from './plugin.js';
export { FourBitLinear, LINEAR_4BIT_OP, type FourBitWeights, type ComputeDType, type Linear4bitKernel } from './four-bit-weights.js';
export { linear4bitCpu } from './kernels/cpu-linear-4bit.js';
export { linear4bitWasm } from './kernels/wasm-linear-4bit.js';
export { linear4bitWebGpu } from './kernels/webgpu-linear-4bit.js';
export * from './codebooks.js';
export * from './quantize.js';
export { quantizedEntries, readQuantized, quantizedWeightNames, fileReader, type StoredTensor, type QuantState, type TensorReader } from './checkpoint.js';
