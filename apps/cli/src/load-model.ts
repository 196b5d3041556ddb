import { createPipeline, type Pipeline } from '@lithe/core';
import { formatBytes } from './format.js';
import { pipelineOptions, type LoadFlags } from './options.js';
import { progressBar } from './progress.js';

/** Loads the model of `--model` with the load flags, showing a progress bar over the weight bytes. */
export async function loadModel(flags: LoadFlags, overrides: { cacheSize?: number } = {}): Promise<Pipeline> {
  const bar = progressBar('loading', formatBytes);
  try {
    return await createPipeline({
      ...(await pipelineOptions(flags)),
      cacheSize: overrides.cacheSize ?? flags.cacheSize,
      onProgress: (loaded, total) => bar.update(loaded, total),
    });
  } finally {
    bar.stop();
  }
}
