export { flashAttention, FLASH_BACKENDS, type FlashAttentionOptions } from './flash-attention.js';
export { attentionFlashWebGpu, webGpuFlashPlan, webGpuFlashUnsupported, WEBGPU_FLASH_MAX_HEAD_DIM, type WebGpuFlashPlan } from './kernels/webgpu-attention.js';
export { FlashWasm, flashPlan, flashUnsupported, type FlashPlan } from './kernels/wasm-attention.js';
