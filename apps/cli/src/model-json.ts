import { nodeModelFiles } from '@lithe/core/node';

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
