// Browser-safe public API of @lithe/gptq. Quantizing a model directory on disk is in './node'.
export { gptqQuantize, rtnQuantize, dequantizeLinear, checkGptqOptions, type GptqOptions, type QuantizedLinear } from './gptq.js';
export { HessianAccumulator } from './hessian.js';
export { findParams, quantizeCode, type GroupParams } from './quantizer.js';
export { cholesky, invertLower, upperCholeskyOfInverse } from './linalg.js';
export { toAutoGptq, fromAutoGptq, toGroupedInt, gptqTensorNames, GPTQ_SUFFIXES, type AutoGptqTensors, type CheckpointFormat, type ReadOptions } from './checkpoint.js';
export { gptq, gptqOptionsFromConfig, type GptqLoadOptions } from './plugin.js';
export { quantizeModel, type QuantizeModelOptions } from './quantize-model.js';
// Kept for existing imports; the name lives in core with the calibration pass.
export { linearName } from '@lithe/core';
