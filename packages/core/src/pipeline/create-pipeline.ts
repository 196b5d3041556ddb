import type { Backend } from '../backend/backend.js';
import { createBackend, type BackendChoice } from '../backends/create-backend.js';
import type { ByteSource } from '../io/byte-source.js';
import { loadGGUFModel } from '../io/gguf-model.js';
import { loadHFDir, type ModelFiles } from '../io/hf-dir.js';
import { withRecordedFormats } from '../quant/hf-quantized.js';
import { createTokenizer } from '../io/tokenizer.js';
import { DenseKVCache } from '../kv-cache/dense-kv-cache.js';
import { parseConfig, type LlamaConfig } from '../model/config.js';
import { LlamaModel } from '../model/llama.js';
import { loadLlamaWeights, type WeightLoadOptions, type WeightSource } from '../model/weights.js';
import { defaultDecodeStep } from '../generate/generate.js';
import { PluginDriver } from '../plugin/plugin-driver.js';
import type { LithePlugin, PluginContext } from '../plugin/types.js';
import { Pipeline } from './pipeline.js';
import { hfWeightSource } from './weight-source.js';

export interface PipelineOptions {
  /**
   * An HF model directory (a path in Node, or a `ModelFiles`), or a GGUF file (a path ending in
   * .gguf in Node, or a `ByteSource` over the file's bytes).
   */
  model: string | ModelFiles | ByteSource;
  /** 'cpu' (default), 'wasm', 'webgpu', 'auto' (WebGPU when an adapter exists) or a backend instance. */
  backend?: BackendChoice | Backend;
  /** Threads of the 'wasm' backend, the calling one included; default: the physical cores. */
  threads?: number;
  plugins?: LithePlugin[];
  /** Storage dtype of the weight matrices; 'auto' keeps the file's. */
  dtype?: WeightLoadOptions['dtype'];
  /** Tokens a KV cache holds (prompt + completion); default min(context length, 4096). */
  cacheSize?: number;
  /** Longest run of tokens one forward step processes; longer prompts are prefilled in chunks. */
  maxChunk?: number;
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
}

async function modelFiles(model: string | ModelFiles): Promise<ModelFiles> {
  if (typeof model !== 'string') return model;
  // Node only: kept out of the browser bundle's static imports.
  const { nodeModelFiles } = await import('../io/node-model-files.js');
  return nodeModelFiles(model);
}

/** What a model is made of, whether it comes from an HF directory or a GGUF file. */
export interface ModelParts {
  location: string;
  config: Record<string, unknown>;
  generationConfig: Record<string, unknown> | null;
  weights: WeightSource;
  tokenizerJson: Record<string, unknown> | null;
  tokenizerConfig: Record<string, unknown> | null;
  close(): Promise<void>;
}

/** Opens a model's config, tokenizer files and weight headers without loading any weights. */
export async function openModel(model: PipelineOptions['model']): Promise<ModelParts> {
  let gguf: ByteSource | null = null;
  if (typeof model === 'string' && /\.gguf$/i.test(model)) {
    const { openFileSource } = await import('../io/node-file-source.js');
    gguf = await openFileSource(model);
  } else if (typeof model !== 'string' && 'read' in model && 'size' in model) {
    gguf = model;
  }
  if (gguf) {
    const m = await loadGGUFModel(gguf);
    return { ...m, generationConfig: null };
  }
  const dir = await loadHFDir(await modelFiles(model as string | ModelFiles));
  return {
    location: dir.location,
    config: dir.config,
    generationConfig: dir.generationConfig,
    weights: withRecordedFormats(dir, hfWeightSource(dir)),
    tokenizerJson: dir.tokenizerJson,
    tokenizerConfig: dir.tokenizerConfig,
    close: () => dir.close(),
  };
}

/**
 * Loads a model and assembles a pipeline: validates the plugins first (before any loading), then
 * config, plugin setup, weights (through the plugins' transforms), model patches, tokenizer and
 * the KV cache factory.
 */
export async function createPipeline(opts: PipelineOptions): Promise<Pipeline> {
  const driver = new PluginDriver(opts.plugins ?? []);
  const dir = await openModel(opts.model);
  try {
    const config = parseConfig(dir.config, dir.generationConfig);
    const quant = (dir.config.quantization_config as { quant_method?: unknown } | undefined)?.quant_method;
    if (quant === 'bitsandbytes' && !driver.plugins.some((p) => p.loadWeight)) {
      throw new Error(`${dir.location} holds 4-bit bitsandbytes weights: load it with the nf4() plugin from @lithe/nf4`);
    }
    const { backend } = await createBackend(opts.backend, {}, { threads: opts.threads });
    const ownsBackend = typeof opts.backend !== 'object';
    try {
      return await assemble(opts, driver, dir, config, backend, ownsBackend);
    } catch (e) {
      if (ownsBackend) await backend.close?.();
      throw e;
    }
  } finally {
    await dir.close();
  }
}

/** The rest of createPipeline, on a backend that exists. */
async function assemble(opts: PipelineOptions, driver: PluginDriver, dir: ModelParts, config: LlamaConfig, backend: Backend, ownsBackend: boolean): Promise<Pipeline> {
  const ctx: PluginContext = { backend, kernels: backend.kernels, config };
  await driver.setup(ctx);

  const weights = await loadLlamaWeights(backend, dir.weights, config, {
    dtype: opts.dtype,
    transform: driver.weightTransform(ctx),
    loadWeight: driver.weightLoader(ctx),
    onProgress: opts.onProgress,
  });
  const model = new LlamaModel(config, backend, weights, opts.maxChunk);
  await driver.patchModel(model, ctx);

  if (!dir.tokenizerJson) throw new Error(`${dir.location}: tokenizer.json is missing; lithe needs the model's tokenizer.json`);
  const tokenizer = createTokenizer(dir.tokenizerJson, dir.tokenizerConfig ?? {}, {
    bosTokenId: config.bosTokenId ?? undefined,
    eosTokenIds: config.eosTokenIds,
  });

  const cacheSize = opts.cacheSize ?? Math.min(config.maxPositionEmbeddings, 4096);
  if (!(Number.isSafeInteger(cacheSize) && cacheSize > 0)) throw new RangeError(`cacheSize must be a positive integer, got ${cacheSize}`);
  const pipeline = new Pipeline({
    config,
    generationConfig: dir.generationConfig,
    model,
    tokenizer,
    backend,
    ownsBackend,
    cacheSize,
    createCache: driver.kvCacheFactory((spec) => new DenseKVCache(spec), ctx),
    decodeStep: driver.wrapDecode(defaultDecodeStep, ctx),
    processLogits: driver.logitsProcessor(ctx),
  });
  driver.observe(pipeline);
  return pipeline;
}
