import type { Backend } from '../backend/backend.js';
import { CpuBackend } from '../backends/cpu/cpu-backend.js';
import { loadHFDir, type ModelFiles } from '../io/hf-dir.js';
import { createTokenizer } from '../io/tokenizer.js';
import { DenseKVCache } from '../kv-cache/dense-kv-cache.js';
import { parseConfig } from '../model/config.js';
import { LlamaModel } from '../model/llama.js';
import { loadLlamaWeights, type WeightLoadOptions } from '../model/weights.js';
import { defaultDecodeStep } from '../generate/generate.js';
import { PluginDriver } from '../plugin/plugin-driver.js';
import type { LithePlugin, PluginContext } from '../plugin/types.js';
import { Pipeline } from './pipeline.js';
import { hfWeightSource } from './weight-source.js';

export interface PipelineOptions {
  /** An HF model directory: a path (Node) or a `ModelFiles` (browsers, custom storage). */
  model: string | ModelFiles;
  /** 'cpu' (default) or a backend instance. */
  backend?: 'cpu' | Backend;
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

function makeBackend(choice: PipelineOptions['backend']): Backend {
  if (choice === undefined || choice === 'cpu') return new CpuBackend();
  if (typeof choice === 'string') throw new Error(`unknown backend '${choice}'; available: cpu`);
  return choice;
}

/**
 * Loads a model and assembles a pipeline: validates the plugins first (before any loading), then
 * config, plugin setup, weights (through the plugins' transforms), model patches, tokenizer and
 * the KV cache factory.
 */
export async function createPipeline(opts: PipelineOptions): Promise<Pipeline> {
  const driver = new PluginDriver(opts.plugins ?? []);
  const dir = await loadHFDir(await modelFiles(opts.model));
  try {
    const config = parseConfig(dir.config, dir.generationConfig);
    const backend = makeBackend(opts.backend);
    const ctx: PluginContext = { backend, kernels: backend.kernels, config };
    await driver.setup(ctx);

    const weights = await loadLlamaWeights(backend, hfWeightSource(dir), config, {
      dtype: opts.dtype,
      transform: driver.weightTransform(ctx),
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
      cacheSize,
      createCache: driver.kvCacheFactory((spec) => new DenseKVCache(spec), ctx),
      decodeStep: driver.wrapDecode(defaultDecodeStep, ctx),
      processLogits: driver.logitsProcessor(ctx),
    });
    driver.observe(pipeline);
    return pipeline;
  } finally {
    await dir.close();
  }
}
