import type { Tensor } from '../../tensor/tensor.js';

/**
 * The wasm backend keeps q8_0 and q4_0 rows repacked: a row's f16 scales first, then its blocks
 * of quants, in the same bytes as llama.cpp's interleaved [scale, quants] blocks (see
 * wasm/kernels.ts). upload/write repack, read unpacks, so only the kernels (and wasm/rows.ts's embedding) see the difference.
 */
export const REPACKED_BLOCK_BYTES: Readonly<Record<string, number>> = { q8_0: 34, q4_0: 18 };

export function repackedBlockBytes(t: Tensor): number | undefined {
  return REPACKED_BLOCK_BYTES[t.dtype];
}

/** Blocks per row and bytes per row of a repacked tensor (its last dimension is the row). */
export function rowGeometry(t: Tensor, blockBytes: number): { nb: number; rowBytes: number } {
  const cols = t.shape.length === 0 ? 1 : t.shape[t.shape.length - 1];
  if (cols % 32 !== 0) throw new Error(`${t}: rows of ${cols} values do not fill whole ${t.dtype} blocks of 32`);
  const nb = cols / 32;
  return { nb, rowBytes: nb * blockBytes };
}
