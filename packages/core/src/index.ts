// Browser-safe public API of @lithe/core. Node-only helpers (files on disk) are in './node'.
export * from './tensor/dtype.js';
export * from './tensor/shape.js';
export * from './tensor/half.js';
export * from './quant/index.js';
export { Tensor } from './tensor/tensor.js';

export type { Backend, TypedArray } from './backend/backend.js';
export { KernelRegistry, globalKernels, type OpName, type RegisterOptions } from './backend/kernel-registry.js';
export type { AttentionParams, KernelSignatures } from './backend/kernel-signatures.js';
export { MemoryTracker, MEMORY_USES, type MemoryByUse, type MemorySnapshot, type MemoryUse } from './backend/memory.js';
export { CpuBackend, type CpuTensor } from './backends/cpu/cpu-backend.js';
export { WebGpuBackend, gpuOf, type WebGpuBackendOptions, type WebGpuStats, type WebGpuStorage, type Segment, type StagedData } from './backends/webgpu/webgpu-backend.js';
export { WebGpuUnavailableError, acquireDevice, type WebGpuDeviceOptions, type WebGpuUnavailableReason, type AcquiredDevice } from './backends/webgpu/device.js';
export { f32Bits, grid, type DispatchSpec, type TensorBinding, type WgslType } from './backends/webgpu/program.js';
export { ONLINE_SOFTMAX_WGSL } from './backends/webgpu/shaders/online-softmax.wgsl.js';
export { GEMV_MAX_ROWS, GEMV_REDUCE_WGSL } from './backends/webgpu/shaders/gemv-reduce.wgsl.js';
export { WasmBackend, WASM32_MAX_BYTES, type Codebook4Weights, type WasmBackendOptions, type WasmLinearDType, type WasmTensor } from './backends/wasm/wasm-backend.js';
export type { WasmKernels } from './backends/wasm/wasm-extension.js';
export { kernelModule, type WasmSimd, type WasmSimdChoice } from './backends/wasm/kernel-modules.js';
export { physicalCores, defaultThreads } from './backends/wasm/thread-pool.js';
export { createBackend, BACKEND_CHOICES, type BackendChoice, type CreatedBackend } from './backends/create-backend.js';

export * from './io/byte-source.js';
export * from './io/safetensors.js';
export * from './io/safetensors-header.js';
export * from './io/hf-dir.js';
export * from './io/http-byte-source.js';
export * from './io/url-model-files.js';
export { openModelInput, openUrl, fileListModel, directoryHandleFiles, remoteModelName, type ModelInput, type FileHandleLike, type DirectoryHandleLike } from './io/model-location.js';
export * from './io/hf-hub.js';
export { cachedHttpSource } from './io/cached-download.js';
export type { OpenedModel, FileCache, CacheWriter, CachedFileMeta } from './platform/types.js';
export * from './io/tokenizer.js';
export * from './io/gguf.js';
export * from './io/gguf-model.js';
export * from './io/gguf-tokenizer.js';
export * from './io/gguf-writer.js';
export * from './io/gguf-convert.js';
export * from './io/chat-template.js';
export * from './io/builtin-chat-templates.js';
export { checkTokenizerJson, TOKENIZER_MODEL_TYPES } from './io/tokenizer-json-check.js';

export * from './model/config.js';
export { ropeInvFrequencies } from './model/rope-frequencies.js';
export * from './model/kv-layer-map.js';
export * from './model/layer-schedule.js';
export { LlamaModel, type LlamaLayer, type ForwardOptions, type BatchSequence } from './model/llama.js';
export { BatchScheduler, type ModelRunner } from './generate/batch-scheduler.js';
export { calibrate, calibrationWindows, linearName, LINEAR_SLOTS, LINEAR_INPUTS, INPUT_OF, type LinearSlot, type LinearInput, type BlockCalibrator, type BlockProbe, type CalibrationTechnique, type CalibrateOptions } from './model/calibration.js';
export { DenseLinear, type LinearModule } from './model/linear-module.js';
export { GroupedIntLinear, LINEAR_GROUPED_INT_OP, type GroupedIntWeights, type LinearGroupedIntKernel } from './model/grouped-int-linear.js';
export { linearGroupedIntCpu } from './backends/cpu/kernels/linear-grouped-int.js';
export { dot } from './backends/cpu/kernels/linear.js';
export * from './model/weights.js';
export { checkedWeightSource, countNonFinite, type NonFiniteCount } from './model/check-tensors.js';
export { hfWeightSource } from './pipeline/weight-source.js';

export type { KVCache, KVCacheFactory, KVCacheLayer, KVCacheSpec, KVDType, QuantizedKVLayout } from './kv-cache/kv-cache.js';
export { QUANTIZED_ATTENTION } from './kv-cache/kv-cache.js';
export { DenseKVCache } from './kv-cache/dense-kv-cache.js';
export { LayeredKVCache } from './kv-cache/layered-kv-cache.js';

export * from './generate/events.js';
export { generateTokens, defaultDecodeStep, type GenerateOptions, type GenerationContext } from './generate/generate.js';
export { perplexity, type PerplexityResult } from './generate/perplexity.js';
export * from './generate/sampling.js';
export * from './generate/logprobs.js';
export * from './generate/rng.js';
export * from './generate/stopping.js';
export * from './generate/text-stream.js';
export { yieldToEventLoop } from './generate/yield-to-event-loop.js';

export type * from './plugin/types.js';
export { definePlugin } from './plugin/define-plugin.js';
export { PluginDriver } from './plugin/plugin-driver.js';

export { createPipeline, openModel, parseModelConfig, type ModelParts, type PipelineOptions } from './pipeline/create-pipeline.js';
export { Pipeline, Generation, DEFAULT_MAX_TOKENS, type PipelineParts } from './pipeline/pipeline.js';

export { createWorkerPipeline, WorkerPipeline, WorkerGeneration, type CreateWorkerPipelineOptions, type WorkerGenerationOptions, type WorkerEndpoint } from './worker/worker-pipeline.js';
export { serveWorkerPipeline, type ServeWorkerOptions } from './worker/worker-host.js';
export type { WorkerPipelineOptions, WorkerGenerateOptions, WorkerPluginSpec, MessageEndpoint } from './worker/protocol.js';
