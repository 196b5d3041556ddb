import { openModelInput } from '@lithe/core';

/**
 * An optional JSON file of the model directory (e.g. tokenizer_config.json, checked before the
 * weights load), or null when absent.
 */
export async function readModelJson(dir: string, name: string): Promise<Record<string, unknown> | null> {
  // A path, an http(s) URL or hf:owner/repo, opened as createPipeline opens it. A GGUF file
  // carries its metadata inside; the loader reads it.
  const opened = await openModelInput(dir);
  if ('gguf' in opened) {
    await opened.gguf.close?.();
    return null;
  }
  const files = opened.files;
  if (!(await files.has(name))) return null;
  const text = await files.readText(name);
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch (err) {
    throw new Error(`${files.location}/${name}: invalid JSON: ${(err as Error).message}`, { cause: err });
  }
}
