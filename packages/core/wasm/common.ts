// Helpers shared by the kernel modules (kernels.ts, kquants.ts): inlined where they are used.

// ---------------------------------------------------------------------------------------------
// 16-bit floats
// ---------------------------------------------------------------------------------------------
//
// x86 takes a microcode assist (over a hundred cycles) for every multiply with a subnormal f32
// operand, and wasm cannot set flush-to-zero. So no decoded f16 may become a subnormal f32:
//  - f16 weights decode by integer ops to the f32 of value h·2^-112 (the kernels rescale the sum),
//    with f16 subnormals (|w| < 2^-14) flushed to zero: about 0.3% of a typical f16 matrix, each
//    off by less than 6.1e-5, where exact decoding through the subnormal range made f16 matrices
//    run at half speed;
//  - f16 scales of quantized blocks decode exactly (f16 subnormals through an integer convert):
//    a scale is one value per block, and flushing one would zero the whole block.
// Inf and NaN become large finite values.

// 2^112: rescales an f32 of value h·2^-112 to the half's value.
export const TWO_112: f32 = 5.192296858534828e33;
const TWO_M24: f32 = 5.9604645e-8;

// A sign-extended f16 in an i32, shifted into f32 position and masked: the f32 of value h·2^-112.
export const HALF_MASK: i32 = 0x8fffe000;

/** Four f16 in sign-extended i32 lanes as h·2^-112 (exact for normal halves, and cheapest). */
@inline export function halfScaled4(h: v128): v128 {
  return v128.and(i32x4.shl(h, 13), i32x4.splat(HALF_MASK));
}

/** Eight f16 weights with the subnormal ones (and zeros) set to +0. */
@inline export function flushSubnormalHalves(h: v128): v128 {
  return v128.andnot(h, i16x8.eq(v128.and(h, i16x8.splat(0x7c00)), i16x8.splat(0)));
}

/**
 * Flushed f16 lanes (flushSubnormalHalves) as f32 of value h·2^-112: the high 16 bits of each f32
 * are sign, zeros and h >> 3, the low 16 bits h << 13. `lo`/`hi` pick lanes 0..3 or 4..7.
 */
@inline export function halvesLo(h: v128): v128 {
  return i16x8.shuffle(i16x8.shl(h, 13), v128.and(i16x8.shr_s(h, 3), i16x8.splat(<i16>0x8fff)), 0, 8, 1, 9, 2, 10, 3, 11);
}

@inline export function halvesHi(h: v128): v128 {
  return i16x8.shuffle(i16x8.shl(h, 13), v128.and(i16x8.shr_s(h, 3), i16x8.splat(<i16>0x8fff)), 4, 12, 5, 13, 6, 14, 7, 15);
}

/** One f16 weight at p, flushed like flushSubnormalHalves, as h·2^-112. */
@inline export function weightHalf(p: usize): f32 {
  const h = <i32>load<i16>(p);
  return (h & 0x7c00) == 0 ? 0 : reinterpret<f32>((h << 13) & HALF_MASK);
}

/** The f16 at p, exactly. */
@inline export function halfAt(p: usize): f32 {
  const h = <i32>load<u16>(p);
  const mb = (h & 0x7fff) << 13;
  const v = select<f32>(<f32>(h & 0x3ff) * TWO_M24, reinterpret<f32>(mb + 0x38000000), mb < 0x00800000);
  return reinterpret<f32>(reinterpret<i32>(v) | ((h & 0x8000) << 16));
}

/** Four f16, one in the low 16 bits of each i32 lane (the high bits are ignored), exactly. */
@inline export function half4(h: v128): v128 {
  const mb = v128.and(i32x4.shl(h, 13), i32x4.splat(0x0fffe000));
  const sub = f32x4.mul(f32x4.convert_i32x4_s(v128.and(h, i32x4.splat(0x3ff))), f32x4.splat(TWO_M24));
  const v = v128.bitselect(sub, i32x4.add(mb, i32x4.splat(0x38000000)), i32x4.lt_s(mb, i32x4.splat(0x00800000)));
  return v128.or(v, v128.and(i32x4.shl(h, 16), i32x4.splat(0x80000000)));
}

@inline export function hadd(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

// ---------------------------------------------------------------------------------------------
// Touching weights before computing on them
// ---------------------------------------------------------------------------------------------
//
// Decoding streams every weight from memory once per token, and wasm has no prefetch instruction.
// A dot-product loop does enough work per cache line that the few line misses it keeps in flight
// leave the core waiting on memory about half the time. So the linears take their rows in chunks
// of about TOUCH_BYTES: first a loop that only loads one byte per 64-byte line (many misses in
// flight at once, so the lines arrive at close to the memory's bandwidth), then the dot products
// on the chunk, now in cache. Measured on a q8_0 matrix streamed from memory with one thread:
// 8.6 GB/s against 6.2 without the touch loop; q4_0 5.9 against 4.4.

export const TOUCH_BYTES: usize = 24576;

/** Rows per chunk for rows of `stride` bytes. */
@inline export function touchChunk(stride: usize): i32 {
  return <i32>max<usize>(1, TOUCH_BYTES / stride);
}

/** Loads one byte of every 64-byte line of [p, p + n) (the sum lands in `sink` so it stays). */
export function touch(p: usize, n: usize, sink: usize): void {
  const end = p + n;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (; p + 256 <= end; p += 256) {
    s0 += load<u8>(p);
    s1 += load<u8>(p, 64);
    s2 += load<u8>(p, 128);
    s3 += load<u8>(p, 192);
  }
  for (; p < end; p += 64) s0 += load<u8>(p);
  store<i32>(sink, s0 + s1 + s2 + s3);
}

// ---------------------------------------------------------------------------------------------
// Reductions and bias
// ---------------------------------------------------------------------------------------------

@inline export function hsumI32(a: v128): i32 {
  return i32x4.extract_lane(a, 0) + i32x4.extract_lane(a, 1) + i32x4.extract_lane(a, 2) + i32x4.extract_lane(a, 3);
}

/** [Σa, Σb, Σc, Σd]: the lane sums of four i32x4 (one convert and multiply then serves four). */
@inline export function sum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(i32x4.shuffle(c, d, 0, 4, 1, 5), i32x4.shuffle(c, d, 2, 6, 3, 7));
  return i32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

/** Lane k of v in every lane (k a constant). */
@inline export function broadcast(v: v128, k: i32): v128 {
  return k == 0 ? i32x4.shuffle(v, v, 0, 0, 0, 0) : k == 1 ? i32x4.shuffle(v, v, 1, 1, 1, 1) : k == 2 ? i32x4.shuffle(v, v, 2, 2, 2, 2) : i32x4.shuffle(v, v, 3, 3, 3, 3);
}

@inline export function addBias(bias: usize, out: usize, T: i32, outF: i32, r0: i32, r1: i32): void {
  if (bias == 0) return;
  for (let t = 0; t < T; t++) {
    for (let o = r0; o < r1; o++) {
      const p = out + ((<usize>t * outF + o) << 2);
      store<f32>(p, load<f32>(p) + load<f32>(bias + (<usize>o << 2)));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 4-bit blocks
// ---------------------------------------------------------------------------------------------

/**
 * 16 × the dot product of 32 nibbles (16 bytes at w: value j < 16 the low nibble of byte j, value
 * j ≥ 16 the high nibble of byte j − 16) with an activation block laid out as kernels.ts's
 * quantize_x does for q4_0: each byte lo + 16·hi meets q[16 + j], its low nibble 16·q[j] − q[16 + j].
 */
@inline export function nibbleDot(w: usize, xb: usize): v128 {
  const b0 = v128.load8x8_u(w);
  const b1 = v128.load8x8_u(w, 8);
  const m = i16x8.splat(0x0f);
  let d = i32x4.dot_i16x8_s(v128.and(b0, m), v128.load(xb));
  d = i32x4.add(d, i32x4.dot_i16x8_s(b0, v128.load(xb, 16)));
  d = i32x4.add(d, i32x4.dot_i16x8_s(v128.and(b1, m), v128.load(xb, 32)));
  return i32x4.add(d, i32x4.dot_i16x8_s(b1, v128.load(xb, 48)));
}


// ---------------------------------------------------------------------------------------------
// 8-bit dot products: relaxed SIMD in the module built with it, the same sums without
// ---------------------------------------------------------------------------------------------
//
// build.mjs compiles this source twice: with relaxed SIMD (ASC_FEATURE_RELAXED_SIMD true),
// dotI8I7 is one i32x4.relaxed_dot_i8x16_i7x16_add_s; without, it widens to i16 and uses
// dot_i16x8_s. Its lanes then group the products differently, but the kernels only use the sum of
// the four lanes, which is the same exact integer. `b`'s bytes must lie in [0, 127] (the relaxed
// instruction leaves other values implementation-defined).

/** c + the products a[i]·b[i] of 16 signed bytes a with 16 bytes b in [0, 127] (lane total). */
@inline export function dotI8I7(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, c);
  const lo = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(a), i16x8.extend_low_i8x16_u(b));
  return i32x4.add(c, i32x4.add(lo, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(a), i16x8.extend_high_i8x16_u(b))));
}

/**
 * Eight i16 lanes whose total is Σ a[i]·b[i] (16 signed bytes a, 16 bytes b in [0, 127]): with
 * relaxed SIMD one i16x8.relaxed_dot_i8x16_i7x16_s (pmaddubsw on x64), each lane a pair's sum; without,
 * products i and i + 8. Either way a lane is at most 2·128·127 in magnitude: callers keep the total
 * of what they add in i16 below 2^15.
 */
@inline export function dotI8I7Pairs(a: v128, b: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i16x8.relaxed_dot_i8x16_i7x16_s(a, b);
  return i16x8.add(i16x8.extmul_low_i8x16_s(a, b), i16x8.extmul_high_i8x16_s(a, b));
}
