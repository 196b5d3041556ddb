import { open } from 'node:fs/promises';
import { safetensorsHeader } from './safetensors-header.js';

/** A tensor to write: its name, safetensors dtype and shape, and its bytes (given, or read when written). */
export type SafetensorsEntry = { name: string; dtype: string; shape: number[] } & ({ data: Uint8Array } | { byteLength: number; read(): Promise<Uint8Array> });

/**
 * Writes a safetensors file of `entries`, back to back in order, reading each entry's bytes only
 * when its turn comes (a checkpoint larger than memory streams through). Returns the file's size.
 */
export async function writeSafetensorsFile(path: string, entries: readonly SafetensorsEntry[], metadata?: Record<string, string>): Promise<number> {
  const header = entries.map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape, byteLength: 'data' in e ? e.data.byteLength : e.byteLength }));
  const { prefix, dataBytes } = safetensorsHeader(header, metadata);
  const fh = await open(path, 'w');
  try {
    await fh.write(prefix);
    for (const e of entries) await fh.write('data' in e ? e.data : await e.read());
  } finally {
    await fh.close();
  }
  return prefix.length + dataBytes;
}
