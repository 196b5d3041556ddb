import { F16_TABLE, f32ToF16 } from '@lithe/core';
import type { KvQuantFormat } from './format.js';

/**
 * Per-row quantization of one token's values for one KV head (a row of `headDim` values).
 *
 * Asymmetric (lmdeploy's online method): scale = (max − min) / (2^bits − 1), zero = −min / scale,
 * q = round(x / scale + zero) in [0, 2^bits − 1], x ≈ (q − zero) · scale.
 * Symmetric (torchao): scale = absmax / (2^(bits−1) − 1), q = round(x / scale) in [−qmax, qmax], x ≈ q · scale.
 *
 * Scale and zero are stored as f16. The scale is rounded up to the next f16 so every value of the
 * row stays inside the code range, and codes are computed from the stored (rounded) scale and zero,
 * so the error of every element is at most scale / 2 (the stored scale). Special rows:
 * - constant (max = min): scale 0 and the zero slot holds the constant itself (f16), codes 0;
 *   dequantization returns that constant without any division.
 * - far from zero (|zero| > 1024, where an f16 zero would be off by more than half a step): the
 *   range is widened to include 0, which keeps zero in [0, 2^bits − 1].
 *
 * Codes: 8 bits one per byte (u8 asymmetric, i8 symmetric); 4 bits two per byte, element 2i in the
 * low nibble and 2i + 1 in the high one (unsigned asymmetric, two's complement symmetric).
 */

/** The smallest f16 (as bits) not below the positive value v. */
function f16Up(v: number): number {
  const h = f32ToF16(v);
  if (h >= 0x7c00) return 0x7bff; // beyond f16: the largest finite value (values past ±8e6 clip)
  return F16_TABLE[h] < v ? h + 1 : h;
}

/** Above this |zero| an f16 zero point loses more than half a step; the range then includes 0. */
const MAX_ZERO = 1024;

export function quantizeRow(
  format: KvQuantFormat,
  x: Float32Array,
  xo: number,
  n: number,
  codes: Uint8Array | Int8Array,
  co: number,
  params: Uint16Array,
  po: number,
): void {
  const { qmax } = format;
  let s: number;
  let z: number;
  if (format.mode === 'asymmetric') {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = x[xo + i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!(hi > lo)) {
      // Constant row (or NaN): scale 0, the zero slot carries the value.
      params[po] = 0;
      params[po + 1] = f32ToF16(lo);
      codes.fill(0, co, co + (n * format.bits) / 8);
      return;
    }
    let sh = f16Up((hi - lo) / qmax);
    let zero = -lo / F16_TABLE[sh];
    if (Math.abs(zero) > MAX_ZERO) {
      lo = Math.min(lo, 0);
      hi = Math.max(hi, 0);
      sh = f16Up((hi - lo) / qmax);
      zero = -lo / F16_TABLE[sh];
    }
    const zh = f32ToF16(zero);
    params[po] = sh;
    params[po + 1] = zh;
    s = F16_TABLE[sh];
    z = F16_TABLE[zh];
  } else {
    let absmax = 0;
    for (let i = 0; i < n; i++) {
      const a = Math.abs(x[xo + i]);
      if (a > absmax) absmax = a;
    }
    if (!(absmax > 0)) {
      params[po] = 0;
      codes.fill(0, co, co + (n * format.bits) / 8);
      return;
    }
    const sh = f16Up(absmax / qmax);
    params[po] = sh;
    s = F16_TABLE[sh];
    // Codes are computed shifted by qmax + 1 so that truncation rounds half up for negatives too.
    z = qmax + 1;
  }
  // q = clamp(round(x / s + z)) in the shifted range [lowest, highest]; symmetric codes shift back.
  const inv = 1 / s;
  const lowest = format.mode === 'asymmetric' ? 0 : 1;
  const highest = format.mode === 'asymmetric' ? qmax : 2 * qmax + 1;
  const shift = format.mode === 'asymmetric' ? 0 : qmax + 1;
  if (format.bits === 8) {
    for (let i = 0; i < n; i++) {
      let q = (x[xo + i] * inv + z + 0.5) | 0;
      q = q < lowest ? lowest : q > highest ? highest : q;
      codes[co + i] = q - shift;
    }
  } else {
    for (let i = 0; i < n; i += 2) {
      let a = (x[xo + i] * inv + z + 0.5) | 0;
      let b = (x[xo + i + 1] * inv + z + 0.5) | 0;
      a = (a < lowest ? lowest : a > highest ? highest : a) - shift;
      b = (b < lowest ? lowest : b > highest ? highest : b) - shift;
      codes[co + (i >> 1)] = (a & 0xf) | ((b & 0xf) << 4);
    }
  }
}

/**
 * Codes of one row as numbers (not yet scaled) into out[oo..oo+n): with `rowAffine`, x = c · a + b.
 * The attention kernels use this to dequantize inside their dot products, one row at a time.
 */
export function unpackCodes(format: KvQuantFormat, codes: Uint8Array | Int8Array, co: number, n: number, out: Float32Array, oo = 0): void {
  if (format.bits === 8) {
    for (let i = 0; i < n; i++) out[oo + i] = codes[co + i];
  } else if (format.mode === 'asymmetric') {
    for (let i = 0; i < n; i += 2) {
      const b = codes[co + (i >> 1)];
      out[oo + i] = b & 0xf;
      out[oo + i + 1] = (b >> 4) & 0xf;
    }
  } else {
    for (let i = 0; i < n; i += 2) {
      const b = codes[co + (i >> 1)];
      out[oo + i] = (b << 28) >> 28;
      out[oo + i + 1] = (b << 24) >> 28;
    }
  }
}

/** The affine map of a row's codes, x = c · a + b, as [a, b]; written into `into`. */
export function rowAffine(format: KvQuantFormat, params: Uint16Array, po: number, into: Float64Array | Float32Array, io = 0): void {
  const a = F16_TABLE[params[po]];
  if (format.mode === 'symmetric') {
    into[io] = a;
    into[io + 1] = 0;
    return;
  }
  const z = F16_TABLE[params[po + 1]];
  into[io] = a;
  into[io + 1] = a === 0 ? z : -z * a;
}

const affine = new Float64Array(2);

/** Dequantizes one row into out[oo..oo+n) (tests and tools; attention never calls this per cache). */
export function dequantizeRow(format: KvQuantFormat, codes: Uint8Array | Int8Array, co: number, params: Uint16Array, po: number, n: number, out: Float32Array, oo = 0): void {
  unpackCodes(format, codes, co, n, out, oo);
  rowAffine(format, params, po, affine);
  const [a, b] = affine;
  for (let i = 0; i < n; i++) out[oo + i] = out[oo + i] * a + b;
}

/** The stored scale of a row (the bound on its per-element error is half of it). */
export function rowScale(params: Uint16Array, po: number): number {
  return F16_TABLE[params[po]];
}
