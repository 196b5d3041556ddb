import { createPipeline, PluginDriver, type Pipeline } from '@lithe/core';
import { formatBytes } from './format.js';
import { readModelJson } from '@lithe/server';
import { pipelineOptions, type LoadFlags } from './options.js';
import { progressBar } from './progress.js';

export interface LoadOverrides {
  /** The KV cache size the command needs (e.g. prompt + generated tokens). */
  cacheSize?: number;
  /** What that size is made of, for the error when it exceeds the model's context (default '--cache-size'). */
  cacheSizeFrom?: string;
}

/**
 * Loads the model of `--model` with the load flags, showing a progress bar over the weight bytes.
 * A cache larger than the model's context length is refused (positions past it were never trained),
 * before the weights load when config.json tells the context. `--backend auto` says what it chose on stderr.
 */
export async function loadModel(flags: LoadFlags, overrides: LoadOverrides = {}): Promise<Pipeline> {
  const cacheSize = overrides.cacheSize ?? flags.cacheSize;
  const from = overrides.cacheSizeFrom ?? '--cache-size';
  const config = await readModelJson(flags.model, 'config.json');
  const options = await pipelineOptions(flags);
  // Read as the pipeline will, plugins included (an LCKV model's config needs lckv()).
  if (config && cacheSize !== undefined) checkContext(cacheSize, new PluginDriver(options.plugins).readConfig(config, null).maxPositionEmbeddings, from);
  const bar = progressBar('loading', formatBytes);
  // hf: models download into the cache first (file by file), then load.
  const downloading = progressBar('downloading', formatBytes);
  let pipeline: Pipeline;
  try {
    pipeline = await createPipeline({
      ...options,
      cacheSize,
      download: { onDownload: (_url, loaded, total) => downloading.update(loaded, total) },
      onProgress: (loaded, total) => {
        downloading.stop();
        bar.update(loaded, total);
      },
    });
  } finally {
    downloading.stop();
    bar.stop();
  }
  try {
    // A GGUF file tells its context only once opened.
    if (cacheSize !== undefined) checkContext(cacheSize, pipeline.config.maxPositionEmbeddings, from);
  } catch (e) {
    pipeline.dispose();
    throw e;
  }
  if (flags.backend === 'auto') process.stderr.write(`backend: ${pipeline.backendDescription}\n`);
  return pipeline;
}

function checkContext(tokens: number, context: number, from: string): void {
  if (tokens > context) throw new Error(`${from} (${tokens} tokens) exceeds the model's context length (max_position_embeddings ${context}); use at most ${context}`);
}
