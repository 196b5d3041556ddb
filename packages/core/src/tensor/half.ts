// Conversions between f32 and the 16-bit float formats, stored as raw uint16 bits.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** All 65536 f16 values decoded once: a table lookup beats bit twiddling in hot loops. */
export const F16_TABLE: Float32Array = (() => {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = decodeF16(h);
  return table;
})();

/** All 65536 bf16 values decoded once, for the same reason. */
export const BF16_TABLE: Float32Array = (() => {
  const bits = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) bits[h] = h << 16;
  return new Float32Array(bits.buffer);
})();

function decodeF16(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

export function f16ToF32(h: number): number {
  return F16_TABLE[h & 0xffff];
}

/** Round-to-nearest-even f32 -> f16 bits. */
export function f32ToF16(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

export function bf16ToF32(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/** Round-to-nearest-even f32 -> bf16 bits (NaN stays NaN). */
export function f32ToBf16(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Decode a run of 16-bit floats into f32. */
export function decodeHalfInto(src: Uint16Array, dtype: 'f16' | 'bf16', dst: Float32Array, srcOffset = 0, n = dst.length): void {
  if (dtype === 'f16') {
    for (let i = 0; i < n; i++) dst[i] = F16_TABLE[src[srcOffset + i]];
  } else {
    const dst32 = new Uint32Array(dst.buffer, dst.byteOffset, n);
    for (let i = 0; i < n; i++) dst32[i] = src[srcOffset + i] << 16;
  }
}
