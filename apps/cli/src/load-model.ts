import { createPipeline, type Pipeline } from '@lithe/core';
import { nodeModelFiles } from '@lithe/core/node';
import { formatBytes } from './format.js';
import { pipelineOptions, type LoadFlags } from './options.js';
import { progressBar } from './progress.js';

/** Loads the model of `--model` with the load flags, showing a progress bar over the weight bytes. */
export async function loadModel(flags: LoadFlags, overrides: { cacheSize?: number } = {}): Promise<Pipeline> {
  const bar = progressBar('loading', formatBytes);
  try {
    return await createPipeline({
      ...pipelineOptions(flags),
      cacheSize: overrides.cacheSize ?? flags.cacheSize,
      onProgress: (loaded, total) => bar.update(loaded, total),
    });
  } finally {
    bar.stop();
  }
}

/**
 * An optional JSON file of the model directory (e.g. tokenizer_config.json, checked before the
 * weights load), or null when absent.
 */
export async function readModelJson(dir: string, name: string): Promise<Record<string, unknown> | null> {
  // A GGUF file carries its metadata inside; the loader reads it.
  if (/\.gguf$/i.test(dir)) return null;
  const files = nodeModelFiles(dir);
  if (!(await files.has(name))) return null;
  const text = await files.readText(name);
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch (err) {
    throw new Error(`${dir}/${name}: invalid JSON: ${(err as Error).message}`, { cause: err });
  }
}
