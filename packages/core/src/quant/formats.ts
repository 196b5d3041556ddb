/**
 * Weight-only block formats with llama.cpp's (ggml's) exact byte layouts, little-endian. A weight
 * [out, in] of one of these dtypes is stored row after row; each row is `in / blockSize` blocks, so
 * `in` must be a multiple of the block size.
 *
 *   q8_0: 32 values in 34 bytes:  f16 d, 32 x i8 q              x = q * d
 *   q4_0: 32 values in 18 bytes:  f16 d, 16 bytes of nibbles    x = (nibble - 8) * d
 *   q4_1: 32 values in 20 bytes:  f16 d, f16 m, 16 bytes        x = nibble * d + m
 *         (value j < 16 is the low nibble of byte j, value j >= 16 the high nibble of byte j - 16)
 *   q4_k: 256 values in 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes
 *   q6_k: 256 values in 210 bytes: 128 bytes low 4 bits, 64 bytes high 2 bits, 16 x i8 scales, f16 d
 */
import { registerDType, dtypeInfo, type DType } from '../tensor/dtype.js';

export type BlockFormat = 'q8_0' | 'q4_0' | 'q4_1' | 'q4_k' | 'q6_k';

export const BLOCK_FORMATS: Readonly<Record<BlockFormat, { blockSize: number; blockBytes: number }>> = {
  q8_0: { blockSize: 32, blockBytes: 34 },
  q4_0: { blockSize: 32, blockBytes: 18 },
  q4_1: { blockSize: 32, blockBytes: 20 },
  q4_k: { blockSize: 256, blockBytes: 144 },
  q6_k: { blockSize: 256, blockBytes: 210 },
};

let registered = false;

/** Registers the block dtypes (idempotent; core does it on import). */
export function registerBlockFormats(): void {
  if (registered) return;
  registered = true;
  for (const [name, { blockSize, blockBytes }] of Object.entries(BLOCK_FORMATS)) {
    registerDType({ name, blockSize, blockBytes, float: false });
  }
}
registerBlockFormats();

export function isBlockFormat(dtype: DType): dtype is BlockFormat {
  return Object.hasOwn(BLOCK_FORMATS, dtype);
}

/** Bytes of one row of `cols` values; a clear error when the row does not fill whole blocks. */
export function blockRowBytes(dtype: DType, cols: number, what = 'a weight'): number {
  const { blockSize, blockBytes } = dtypeInfo(dtype);
  if (cols % blockSize !== 0) {
    throw new Error(`${what}: rows of ${cols} values do not fill whole ${dtype} blocks of ${blockSize}; ${dtype} needs the input size to be a multiple of ${blockSize}`);
  }
  return (cols / blockSize) * blockBytes;
}
