// Public API of @lithe/awq: activation-aware weight quantization, and AutoAWQ checkpoints (GEMM
// layout) loaded into core's grouped int format. Quantizing a model directory on disk is in './node'.
export { awq, awqOptionsFromConfig, type AwqLoadOptions } from './plugin.js';
export { fromAutoAwq, toAutoAwq, AWQ_ORDER, type AutoAwqTensors } from './checkpoint.js';
export { awqQuantize, fakeQuantize, quantizeGroup, AWQ_BITS, type AwqQuantized } from './quantizer.js';
export { activationScales, scaledFakeQuantize, searchClip, InputStats, ALPHA_GRID, CLIP_RATIOS } from './search.js';
export { foldScales, canScale, AWQ_GROUPS, GROUP_SLOTS, type AwqGroup } from './fold.js';
export { awqQuantizeModel, checkAwqOptions, type AwqOptions, type AwqBlockReport } from './quantize-model.js';
