import { dequantize } from '../../quant/dequantize.js';
import type { Tensor } from '../../tensor/tensor.js';
import { f32Of } from '../cpu/cpu-backend.js';

/**
 * The wasm backend keeps q8_0 and q4_0 rows repacked: a row's f16 scales first, then its blocks
 * of quants, in the same bytes as llama.cpp's interleaved [scale, quants] blocks (see
 * wasm/kernels.ts). upload/write repack, read unpacks, so only the kernels see the difference.
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

/** Rewrites one repacked row in llama.cpp's layout (`into`: rowBytes bytes). */
export function unpackRow(row: Uint8Array, nb: number, blockBytes: number, into: Uint8Array): Uint8Array {
  const qb = blockBytes - 2;
  for (let b = 0; b < nb; b++) {
    into[b * blockBytes] = row[2 * b];
    into[b * blockBytes + 1] = row[2 * b + 1];
    into.set(row.subarray(2 * nb + b * qb, 2 * nb + (b + 1) * qb), b * blockBytes + 2);
  }
  return into;
}

// One row in llama.cpp's layout, reused by every lookup (grown when a table's rows are longer).
let rowScratch = new Uint8Array(0);

/** out[t] = table[ids[t]] for a repacked q8_0 / q4_0 table: only the looked-up rows are decoded. */
export function embeddingRepacked(table: Tensor, ids: Int32Array, out: Tensor): void {
  const blockBytes = REPACKED_BLOCK_BYTES[table.dtype];
  const [vocab, dim] = table.shape;
  const { nb, rowBytes } = rowGeometry(table, blockBytes);
  const bytes = table.handle as Uint8Array;
  const dst = f32Of(out);
  if (rowScratch.length < rowBytes) rowScratch = new Uint8Array(rowBytes);
  const row = rowScratch.subarray(0, rowBytes);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!(id >= 0 && id < vocab)) throw new RangeError(`token id ${id} is outside the vocabulary (0..${vocab - 1})`);
    unpackRow(bytes.subarray(id * rowBytes, (id + 1) * rowBytes), nb, blockBytes, row);
    dequantize(table.dtype as 'q8_0' | 'q4_0', row, dst.subarray(t * dim, (t + 1) * dim));
  }
}
