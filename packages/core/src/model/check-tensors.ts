/**
 * `checkTensors`: scan every weight for NaN and Inf as it loads (llama.cpp's --check-tensors), so a
 * corrupt or overflowed file fails at load with the tensor named rather than as NaN logits later.
 */
import { dequantize } from '../quant/dequantize.js';
import { isBlockFormat } from '../quant/formats.js';
import type { DType } from '../tensor/dtype.js';
import type { WeightSource } from './weights.js';

export interface NonFiniteCount {
  nan: number;
  inf: number;
  /** Element index of the first non-finite value, -1 when there is none. */
  first: number;
}

/** Counts NaN and ±Inf in a tensor's stored bytes; integer and unknown packed types count none. */
export function countNonFinite(bytes: Uint8Array, dtype: DType): NonFiniteCount {
  const c: NonFiniteCount = { nan: 0, inf: 0, first: -1 };
  const note = (i: number, isNaN: boolean) => {
    if (isNaN) c.nan++;
    else c.inf++;
    if (c.first < 0) c.first = i;
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'f32') {
    for (let i = 0; i < bytes.byteLength >> 2; i++) {
      const v = view.getFloat32(i * 4, true);
      if (!Number.isFinite(v)) note(i, v !== v);
    }
  } else if (dtype === 'f16' || dtype === 'bf16') {
    // Exponent all ones: Inf when the mantissa is 0, NaN otherwise.
    const [exp, man] = dtype === 'f16' ? [0x7c00, 0x03ff] : [0x7f80, 0x007f];
    for (let i = 0; i < bytes.byteLength >> 1; i++) {
      const h = view.getUint16(i * 2, true);
      if ((h & exp) === exp) note(i, (h & man) !== 0);
    }
  } else if (isBlockFormat(dtype)) {
    const v = dequantize(dtype, bytes);
    for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) note(i, v[i] !== v[i]);
  }
  return c;
}

/** The source with every read scanned; the first tensor holding NaN or Inf fails the load. */
export function checkedWeightSource(source: WeightSource, location: string): WeightSource {
  return {
    totalBytes: source.totalBytes,
    names: () => source.names(),
    info: (name) => source.info(name),
    async read(name) {
      const bytes = await source.read(name);
      const dtype = source.info(name)?.dtype;
      if (dtype) {
        const c = countNonFinite(bytes, dtype);
        if (c.first >= 0) {
          throw new Error(`${location}: tensor '${name}' (${dtype}) holds ${c.nan} NaN and ${c.inf} Inf values (the first at element ${c.first}); the file is corrupt or was saved after an overflow`);
        }
      }
      return bytes;
    },
  };
}
