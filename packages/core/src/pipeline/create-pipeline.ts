import type { Backend } from '../backend/backend.js';
import { createBackend, type BackendChoice } from '../backends/create-backend.js';
import { loadGGUFModel } from '../io/gguf-model.js';
import { loadHFDir } from '../io/hf-dir.js';
import type { HubOptions } from '../io/hf-hub.js';
import { openModelInput, type ModelInput } from '../io/model-location.js';
import { withRecordedFormats } from '../quant/hf-quantized.js';
import { createTokenizer, type LitheTokenizer } from '../io/tokenizer.js';
import { resolveChatTemplate } from '../io/builtin-chat-templates.js';
import { checkedWeightSource } from '../model/check-tensors.js';
import { DenseKVCache } from '../kv-cache/dense-kv-cache.js';
import type { KVDType } from '../kv-cache/kv-cache.js';
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
   * An HF-layout model directory or a GGUF file: a path (Node) or an address relative to the page
   * (browsers); an http(s) URL (read with Range requests); a `File`/`Blob` (a GGUF) or the files of
   * a directory (`FileList`, `File[]`); a `ByteSource` over a GGUF; or a `ModelFiles`.
   */
  model: ModelInput;
  /**
   * Downloads of a URL or `hf:` model: the Hub endpoint and token, request headers, parallel
   * chunks, retries, and the cache (on by default for `hf:` models, off for plain URLs).
   */
  download?: HubOptions;
  /**
   * 'auto' (default: WebGPU on a hardware GPU, else wasm, else the TypeScript 'cpu' reference),
   * 'wasm', 'webgpu', 'cpu' or a backend instance. `pipeline.backendDescription` says what was chosen.
   */
  backend?: BackendChoice | Backend;
  /** Threads of the 'wasm' backend, the calling one included; default: the physical cores. */
  threads?: number;
  plugins?: LithePlugin[];
  /** Storage dtype of the weight matrices; 'auto' keeps the file's. */
  dtype?: WeightLoadOptions['dtype'];
  /** Tokens a KV cache holds (prompt + completion); default min(context length, 4096). */
  cacheSize?: number;
  /** Storage of the dense KV cache's keys and values: 'f16' (default, half the bytes) or 'f32'. */
  kvDtype?: KVDType;
  /** Longest run of tokens one forward step processes; longer prompts are prefilled in chunks. */
  maxChunk?: number;
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
  /** Scan every weight for NaN and Inf while loading (slower); a tensor holding any fails the load. */
  checkTensors?: boolean;
  /**
   * Chat template for `chat()`: a built-in name (chatml, llama2, llama3, mistral, zephyr, gemma) or
   * Jinja template text. Default: the model's own (chat_template.jinja, tokenizer_config.json or the GGUF).
   */
  chatTemplate?: string;
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
export async function openModel(model: PipelineOptions['model'], download: HubOptions = {}): Promise<ModelParts> {
  const opened = await openModelInput(model, download);
  if ('gguf' in opened) {
    const m = await loadGGUFModel(opened.gguf);
    return { ...m, generationConfig: null };
  }
  const dir = await loadHFDir(opened.files);
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
 * config, tokenizer, plugin setup, weights (through the plugins' transforms), model patches and
 * the KV cache factory.
 */
export async function createPipeline(opts: PipelineOptions): Promise<Pipeline> {
  const driver = new PluginDriver(opts.plugins ?? []);
  if (opts.kvDtype !== undefined && opts.kvDtype !== 'f16' && opts.kvDtype !== 'f32') throw new Error(`kvDtype must be 'f16' or 'f32', got '${String(opts.kvDtype)}'`);
  // A bad template name fails before anything loads.
  const chatTemplate = opts.chatTemplate === undefined ? undefined : resolveChatTemplate(opts.chatTemplate);
  const dir = await openModel(opts.model, opts.download);
  try {
    const config = parseModelConfig(dir, (raw, gen) => driver.readConfig(raw, gen));
    const quant = (dir.config.quantization_config as { quant_method?: unknown } | undefined)?.quant_method;
    if (quant === 'bitsandbytes' && !driver.plugins.some((p) => p.loadWeight)) {
      throw new Error(`${dir.location} holds 4-bit bitsandbytes weights: load it with the nf4() plugin from @lithe/nf4`);
    }
    if (quant === 'gptq' && !driver.plugins.some((p) => p.loadWeight)) {
      throw new Error(`${dir.location} holds GPTQ weights (qweight, qzeros, scales, g_idx): load it with the gptq() plugin from @lithe/gptq`);
    }
    if (quant === 'awq' && !driver.plugins.some((p) => p.loadWeight)) {
      throw new Error(`${dir.location} holds AWQ weights (qweight, qzeros, scales): load it with the awq() plugin from @lithe/awq`);
    }
    const { backend, description } = await createBackend(opts.backend ?? 'auto', {}, { threads: opts.threads });
    const ownsBackend = typeof opts.backend !== 'object';
    try {
      return await assemble({ ...opts, chatTemplate }, driver, dir, config, backend, ownsBackend, description);
    } catch (e) {
      if (ownsBackend) await backend.close?.();
      throw e;
    }
  } finally {
    await dir.close();
  }
}

/** parseConfig (or `read`: the plugins' readConfig) with the model's location in its errors: the directory's config.json, or the GGUF file. */
export function parseModelConfig(
  parts: Pick<ModelParts, 'location' | 'config' | 'generationConfig'>,
  read: (raw: Record<string, unknown>, generationConfig: Record<string, unknown> | null) => LlamaConfig = parseConfig,
): LlamaConfig {
  try {
    return read(parts.config, parts.generationConfig);
  } catch (e) {
    const what = (e as Error).message.replace(/^config\.json: /, '');
    const where = parts.location.endsWith('.gguf') ? `${parts.location} (metadata read as config.json)` : `${parts.location}/config.json`;
    throw new Error(`${where}: ${what}`, { cause: e });
  }
}

/** Token ids past the embedding's rows would read outside it mid-generation: refuse at load. */
function checkVocabularyFits(tokenizer: LitheTokenizer, config: LlamaConfig, location: string): void {
  if (tokenizer.vocabSize <= config.vocabSize) return;
  const fromGGUF = location.endsWith('.gguf');
  throw new Error(
    `${location}: the tokenizer has ${tokenizer.vocabSize} tokens (ids up to ${tokenizer.vocabSize - 1}) but the model's embedding has only ${config.vocabSize} rows ` +
      `(${fromGGUF ? 'the GGUF vocab_size / token_embd.weight' : "config.json's vocab_size"}); the tokenizer belongs to another model`,
  );
}

/** The rest of createPipeline, on a backend that exists. */
async function assemble(opts: PipelineOptions, driver: PluginDriver, dir: ModelParts, config: LlamaConfig, backend: Backend, ownsBackend: boolean, backendDescription: string): Promise<Pipeline> {
  // The tokenizer first: a vocabulary that does not fit the embedding fails before the weights load.
  if (!dir.tokenizerJson) throw new Error(`${dir.location}: tokenizer.json is missing; lithe needs the model's tokenizer.json`);
  const tokenizer = createTokenizer(dir.tokenizerJson, dir.tokenizerConfig ?? {}, {
    bosTokenId: config.bosTokenId ?? undefined,
    eosTokenIds: config.eosTokenIds,
    chatTemplate: opts.chatTemplate,
    location: `${dir.location}${dir.location.endsWith('.gguf') ? '' : '/tokenizer.json'}`,
  });
  checkVocabularyFits(tokenizer, config, dir.location);
  const ctx: PluginContext = { backend, kernels: backend.kernels, config, tokenizer };
  await driver.setup(ctx);

  const weightSource = opts.checkTensors ? checkedWeightSource(dir.weights, dir.location) : dir.weights;
  const weights = await loadLlamaWeights(backend, weightSource, config, {
    dtype: opts.dtype,
    transform: driver.weightTransform(ctx),
    loadWeight: driver.weightLoader(ctx),
    onProgress: opts.onProgress,
  }).catch((e: Error) => {
    // The loader says 'weights: ...'; name the model instead.
    throw e.message.startsWith('weights: ') ? new Error(`${dir.location}: ${e.message.slice(9)}`, { cause: e }) : e;
  });
  const model = new LlamaModel(config, backend, weights, opts.maxChunk);
  await driver.patchModel(model, ctx);

  const cacheSize = opts.cacheSize ?? Math.min(config.maxPositionEmbeddings, 4096);
  if (!(Number.isSafeInteger(cacheSize) && cacheSize > 0)) throw new RangeError(`cacheSize must be a positive integer, got ${cacheSize}`);
  const pipeline = new Pipeline({
    config,
    generationConfig: dir.generationConfig,
    model,
    tokenizer,
    backend,
    backendDescription,
    ownsBackend,
    cacheSize,
    kvDtype: opts.kvDtype ?? 'f16',
    createCache: driver.kvCacheFactory((spec) => new DenseKVCache(spec), ctx),
    decodeStep: driver.wrapDecode(defaultDecodeStep, ctx),
    processLogits: driver.logitsProcessor(ctx),
  });
  driver.observe(pipeline);
  return pipeline;
}
