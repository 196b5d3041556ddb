// lithe's WebAssembly SIMD kernels (AssemblyScript). Built by build.mjs into one module that every
// thread instantiates over the same shared memory. All arguments are byte addresses into that
// memory and element counts; threaded kernels take the range of output rows (or heads) to compute.
// The TypeScript kernels in src/backends/cpu/kernels are the reference these are tested against.

import { addBias, broadcast, dotI8I7, dotI8I7Pairs, flushSubnormalHalves, hadd, half4, halfAt, halfScaled4, halvesHi, halvesLo, hsumI32, sum4, touch, touchChunk, TWO_112, weightHalf } from './common';

/** dst[i] = src[i] * factor: f16 kernels take x pre-scaled by 2^56 (their weights come as w·2^-112). */
export function scale_f32(src: usize, dst: usize, n: i32, factor: f32): void {
  const f = f32x4.splat(factor);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), f32x4.mul(v128.load(src + (<usize>i << 2)), f));
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), load<f32>(src + (<usize>i << 2)) * factor);
}

// ---------------------------------------------------------------------------------------------
// Dot products of one weight row with one activation row
// ---------------------------------------------------------------------------------------------

@inline function dotF32(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const pa = a + (<usize>i << 2), pb = b + (<usize>i << 2);
    s0 = f32x4.add(s0, f32x4.mul(v128.load(pa), v128.load(pb)));
    s1 = f32x4.add(s1, f32x4.mul(v128.load(pa, 16), v128.load(pb, 16)));
    s2 = f32x4.add(s2, f32x4.mul(v128.load(pa, 32), v128.load(pb, 32)));
    s3 = f32x4.add(s3, f32x4.mul(v128.load(pa, 48), v128.load(pb, 48)));
  }
  for (; i + 4 <= n; i += 4) s0 = f32x4.add(s0, f32x4.mul(v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2))));
  let s = hadd(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3)));
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/** f16 row (as w·2^-112, subnormal halves flushed) · x pre-scaled by 2^56; the caller multiplies by 2^56. */
@inline function dotF16(w: usize, xs: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const pw = w + (<usize>i << 1), px = xs + (<usize>i << 2);
    const h0 = flushSubnormalHalves(v128.load(pw)), h1 = flushSubnormalHalves(v128.load(pw, 16));
    s0 = f32x4.add(s0, f32x4.mul(halvesLo(h0), v128.load(px)));
    s1 = f32x4.add(s1, f32x4.mul(halvesHi(h0), v128.load(px, 16)));
    s2 = f32x4.add(s2, f32x4.mul(halvesLo(h1), v128.load(px, 32)));
    s3 = f32x4.add(s3, f32x4.mul(halvesHi(h1), v128.load(px, 48)));
  }
  let s = hadd(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3)));
  for (; i < n; i++) s += weightHalf(w + (<usize>i << 1)) * load<f32>(xs + (<usize>i << 2));
  return s;
}

@inline function bf16Lo(h: v128): v128 {
  return i16x8.shuffle(i16x8.splat(0), h, 0, 8, 1, 9, 2, 10, 3, 11);
}
@inline function bf16Hi(h: v128): v128 {
  return i16x8.shuffle(i16x8.splat(0), h, 4, 12, 5, 13, 6, 14, 7, 15);
}

@inline function dotBF16(w: usize, x: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const pw = w + (<usize>i << 1), px = x + (<usize>i << 2);
    const h0 = v128.load(pw), h1 = v128.load(pw, 16);
    s0 = f32x4.add(s0, f32x4.mul(bf16Lo(h0), v128.load(px)));
    s1 = f32x4.add(s1, f32x4.mul(bf16Hi(h0), v128.load(px, 16)));
    s2 = f32x4.add(s2, f32x4.mul(bf16Lo(h1), v128.load(px, 32)));
    s3 = f32x4.add(s3, f32x4.mul(bf16Hi(h1), v128.load(px, 48)));
  }
  let s = hadd(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3)));
  for (; i < n; i++) s += reinterpret<f32>(<i32>load<u16>(w + (<usize>i << 1)) << 16) * load<f32>(x + (<usize>i << 2));
  return s;
}

// ---------------------------------------------------------------------------------------------
// Float linear: out[t, o] = x[t] · w[o] + b[o] for o in [r0, r1)
// ---------------------------------------------------------------------------------------------

/** Four weight rows against one activation row (prefill: each x load feeds four products). */
@inline function dot4F32(w: usize, stride: usize, x: usize, n: i32, out: usize): void {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    const xv = v128.load(x + off);
    const p = w + off;
    s0 = f32x4.add(s0, f32x4.mul(v128.load(p), xv));
    s1 = f32x4.add(s1, f32x4.mul(v128.load(p + stride), xv));
    s2 = f32x4.add(s2, f32x4.mul(v128.load(p + 2 * stride), xv));
    s3 = f32x4.add(s3, f32x4.mul(v128.load(p + 3 * stride), xv));
  }
  let a0 = hadd(s0), a1 = hadd(s1), a2 = hadd(s2), a3 = hadd(s3);
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const xv = load<f32>(x + off);
    a0 += load<f32>(w + off) * xv;
    a1 += load<f32>(w + off + stride) * xv;
    a2 += load<f32>(w + off + 2 * stride) * xv;
    a3 += load<f32>(w + off + 3 * stride) * xv;
  }
  store<f32>(out, a0);
  store<f32>(out, a1, 4);
  store<f32>(out, a2, 8);
  store<f32>(out, a3, 12);
}

/**
 * Rows [r0, r1) of out[T, outF] from f32 weight rows at `w` (row stride inF), T activation rows at
 * x. Groups of four weight rows share each activation load; results land in out via `tmp`.
 */
function matmulRowsF32(x: usize, w: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, tmp: usize, scale: f32): void {
  const stride = <usize>inF << 2;
  let o = r0;
  for (; o + 4 <= r1; o += 4) {
    const wr = w + <usize>(o - r0) * stride;
    for (let t = 0; t < T; t++) {
      dot4F32(wr, stride, x + <usize>t * stride, inF, tmp);
      const po = out + ((<usize>t * outF + o) << 2);
      v128.store(po, f32x4.mul(v128.load(tmp), f32x4.splat(scale)));
    }
  }
  for (; o < r1; o++) {
    const wr = w + <usize>(o - r0) * stride;
    for (let t = 0; t < T; t++) store<f32>(out + ((<usize>t * outF + o) << 2), dotF32(wr, x + <usize>t * stride, inF) * scale);
  }
}

export function linear_f32(x: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, _scratch: usize): void {
  const stride = <usize>inF << 2;
  if (T == 1) {
    const step = touchChunk(stride);
    for (let c = r0; c < r1; c += step) {
      const e = min(c + step, r1);
      touch(w + <usize>c * stride, <usize>(e - c) * stride, _scratch);
      for (let o = c; o < e; o++) store<f32>(out + (<usize>o << 2), dotF32(w + <usize>o * stride, x, inF));
    }
  } else {
    // Blocks of 64 weight rows are reused for all T activation rows while they are in cache.
    for (let b = r0; b < r1; b += 64) {
      const e = min(b + 64, r1);
      matmulRowsF32(x, w + <usize>b * stride, out, T, inF, outF, b, e, _scratch, 1);
    }
  }
  addBias(bias, out, T, outF, r0, r1);
}

/** Converts f16 weight rows [o0, o1) to f32 (as w·2^-112, subnormal halves flushed) in scratch. */
function widenF16Rows(w: usize, inF: i32, o0: i32, o1: i32, dst: usize): void {
  const n = (o1 - o0) * inF;
  const src = w + ((<usize>o0 * inF) << 1);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const h = flushSubnormalHalves(v128.load(src + (<usize>i << 1)));
    v128.store(dst + (<usize>i << 2), halvesLo(h));
    v128.store(dst + (<usize>i << 2), halvesHi(h), 16);
  }
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), weightHalf(src + (<usize>i << 1)));
}

function widenBF16Rows(w: usize, inF: i32, o0: i32, o1: i32, dst: usize): void {
  const n = (o1 - o0) * inF;
  const src = w + ((<usize>o0 * inF) << 1);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const h = v128.load(src + (<usize>i << 1));
    v128.store(dst + (<usize>i << 2), bf16Lo(h));
    v128.store(dst + (<usize>i << 2), bf16Hi(h), 16);
  }
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), reinterpret<f32>(<i32>load<u16>(src + (<usize>i << 1)) << 16));
}

// Prefill converts 16 weight rows at a time into scratch (16 * inF * 4 bytes + 16 bytes).
const WIDE_ROWS: i32 = 16;

/** x must be pre-scaled by 2^56 (scale_f32). */
export function linear_f16(xs: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, scratch: usize): void {
  const TWO_56: f32 = 7.205759403792794e16;
  if (T == 1) {
    const stride = <usize>inF << 1;
    const step = touchChunk(stride);
    for (let c = r0; c < r1; c += step) {
      const e = min(c + step, r1);
      touch(w + <usize>c * stride, <usize>(e - c) * stride, scratch);
      for (let o = c; o < e; o++) store<f32>(out + (<usize>o << 2), dotF16(w + <usize>o * stride, xs, inF) * TWO_56);
    }
  } else {
    const tmp = scratch + ((<usize>WIDE_ROWS * inF) << 2);
    for (let b = r0; b < r1; b += WIDE_ROWS) {
      const e = min(b + WIDE_ROWS, r1);
      widenF16Rows(w, inF, b, e, scratch);
      matmulRowsF32(xs, scratch, out, T, inF, outF, b, e, tmp, TWO_56);
    }
  }
  addBias(bias, out, T, outF, r0, r1);
}

export function linear_bf16(x: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, scratch: usize): void {
  if (T == 1) {
    const stride = <usize>inF << 1;
    const step = touchChunk(stride);
    for (let c = r0; c < r1; c += step) {
      const e = min(c + step, r1);
      touch(w + <usize>c * stride, <usize>(e - c) * stride, scratch);
      for (let o = c; o < e; o++) store<f32>(out + (<usize>o << 2), dotBF16(w + <usize>o * stride, x, inF));
    }
  } else {
    const tmp = scratch + ((<usize>WIDE_ROWS * inF) << 2);
    for (let b = r0; b < r1; b += WIDE_ROWS) {
      const e = min(b + WIDE_ROWS, r1);
      widenBF16Rows(w, inF, b, e, scratch);
      matmulRowsF32(x, scratch, out, T, inF, outF, b, e, tmp, 1);
    }
  }
  addBias(bias, out, T, outF, r0, r1);
}

// ---------------------------------------------------------------------------------------------
// Block-quantized weights (llama.cpp's q8_0 and q4_0) against activations quantized per block
// ---------------------------------------------------------------------------------------------
//
// llama.cpp stores a row as nb blocks of [f16 d, quants]: q8_0 34 bytes (32 × i8, x = q·d), q4_0
// 18 bytes (16 bytes; value j < 16 is the low nibble of byte j, value j ≥ 16 the high nibble of
// byte j − 16; x = (nibble − 8)·d). The backend repacks each row as it uploads it (repack_rows):
// the row's nb f16 scales first, then its nb blocks of quants, in the same bytes. Decoding reads
// four scales in one load and the quants as one dense stream, which keeps more of the row's cache
// misses in flight than the interleaved layout (measured: about 1.4× the throughput on a q8_0 row
// streamed from memory).
//
// The activation row is quantized to 8 bits per 32-value block (like llama.cpp's q8 dot products)
// and kept as 32 i16 per block (64 bytes), followed by nb f32 scales and nb i32 offsets:
//  - for q8_0, q in order: the weights widen to i16 as they load (load8x8_s) and meet it in
//    i32x4.dot_i16x8_s;
//  - for q4_0, the byte b = lo + 16·hi of each nibble pair widens to i16 (load8x8_u) and meets
//    Y1 = q[16 + j], while its low nibble (b & 15) meets Y2 = 16·q[j] − q[16 + j]: the two products
//    sum to 16·(lo·q[j] + hi·q[16 + j]) with no shift, so the block's integer dot is 16 times the
//    true one. Its scale carries the 1/16, and its offset 16·8·Σq removes the nibbles' +8.
// Every product fits its lane: |Y2| ≤ 16·127 + 127, and dot_i16x8_s sums pairs into i32.

/** Bytes of quantized activation per row of inF values. */
@inline function xqRowBytes(inF: i32): usize {
  return <usize>(inF >> 5) * 72;
}

export function xq_row_bytes(inF: i32): usize {
  return xqRowBytes(inF);
}

/**
 * Copies `rows` rows of nb blocks of bb bytes between llama.cpp's layout (each block an f16 scale,
 * then its quants) and the repacked one ([nb scales][nb × quants]): to the repacked one if `repack`.
 */
@inline function convertRows(src: usize, dst: usize, rows: i32, nb: i32, bb: i32, repack: bool): void {
  const qb = <usize>(bb - 2);
  const rowBytes = <usize>nb * bb;
  for (let r = 0; r < rows; r++) {
    const s = src + <usize>r * rowBytes, d = dst + <usize>r * rowBytes;
    const llama = repack ? s : d, packed = repack ? d : s;
    for (let b = 0; b < nb; b++) {
      const blk = llama + <usize>b * bb, scale = packed + (<usize>b << 1), quants = packed + (<usize>nb << 1) + <usize>b * qb;
      store<u16>(repack ? scale : blk, load<u16>(repack ? blk : scale));
      const from = repack ? blk + 2 : quants, to = repack ? quants : blk + 2;
      for (let k: usize = 0; k < qb; k += 16) v128.store(to + k, v128.load(from + k));
    }
  }
}

/**
 * Repacks rows as they upload; returns how many q8_0 quants (bb = 34) are −128, which the relaxed
 * kernel's sign trick cannot negate (the backend then runs that tensor on the i16 kernel).
 */
export function repack_rows(src: usize, dst: usize, rows: i32, nb: i32, bb: i32): i32 {
  convertRows(src, dst, rows, nb, bb, true);
  if (bb != 34) return 0;
  let n = i32x4.splat(0);
  for (let r = 0; r < rows; r++) {
    const q = dst + <usize>r * nb * bb + (<usize>nb << 1);
    for (let k: usize = 0; k < <usize>nb * 32; k += 16) n = i32x4.sub(n, i32x4.extadd_pairwise_i16x8_s(i16x8.extadd_pairwise_i8x16_s(i8x16.eq(v128.load(q + k), i8x16.splat(-128)))));
  }
  return hsumI32(n);
}

export function unpack_rows(src: usize, dst: usize, rows: i32, nb: i32, bb: i32): void {
  convertRows(src, dst, rows, nb, bb, false);
}

/**
 * Tile tables after the T rows: for every tile of four rows (the last one repeats row T − 1), nb
 * f32x4 of the four rows' block scales, then nb i32x4 of their block offsets. The multi-row kernel
 * then scales four rows' block dots with one multiply.
 */
@inline function tileTables(xq: usize, T: i32, nb: i32): void {
  const xs = xqRowBytes(nb << 5);
  const tabBytes = <usize>nb << 5;
  for (let i = 0; i < (T + 3) >> 2; i++) {
    const tab = xq + <usize>T * xs + <usize>i * tabBytes;
    for (let r = 0; r < 4; r++) {
      const row = xq + <usize>min(4 * i + r, T - 1) * xs;
      const scales = row + (<usize>nb << 6);
      for (let b = 0; b < nb; b++) {
        store<f32>(tab + (<usize>b << 4) + (<usize>r << 2), load<f32>(scales + (<usize>b << 2)));
        store<i32>(tab + (<usize>nb << 4) + (<usize>b << 4) + (<usize>r << 2), load<i32>(scales + (<usize>(nb + b) << 2)));
      }
    }
  }
}

@inline function quantizeRowsQ(x: usize, xq: usize, T: i32, inF: i32, q4: bool, i8: bool): void {
  const nb = inF >> 5;
  for (let t = 0; t < T; t++) {
    const row = x + ((<usize>t * inF) << 2);
    const q = xq + <usize>t * xqRowBytes(inF);
    const scales = q + (<usize>nb << 6);
    const offsets = scales + (<usize>nb << 2);
    for (let b = 0; b < nb; b++) {
      const src = row + (<usize>b << 7);
      let m = f32x4.splat(0);
      for (let k = 0; k < 8; k++) m = f32x4.max(m, f32x4.abs(v128.load(src + (<usize>k << 4))));
      const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
      const d: f32 = amax / 127;
      const id: f32 = amax > 0 ? 127 / amax : 0;
      const dst = q + (<usize>b << 6);
      let sum = 0;
      for (let j = 0; j < 16; j++) {
        const lo = <i32>nearest<f32>(load<f32>(src + (<usize>j << 2)) * id);
        const hi = <i32>nearest<f32>(load<f32>(src + (<usize>(j + 16) << 2)) * id);
        sum += lo + hi;
        if (i8) {
          if (q4) {
            store<i8>(dst + <usize>j, <i8>lo);
            store<i8>(dst + <usize>j, <i8>hi, 16);
          } else {
            // |q| for the 7-bit operand, q's sign as a byte mask (moved onto the weights in the dot).
            store<u8>(dst + <usize>j, <u8>abs(lo));
            store<u8>(dst + <usize>j, <u8>abs(hi), 16);
            store<i8>(dst + <usize>j, lo < 0 ? -1 : 0, 32);
            store<i8>(dst + <usize>j, hi < 0 ? -1 : 0, 48);
          }
        } else if (q4) {
          // i16 slots: bytes 0..7 of the nibbles pair with slots 0..15, bytes 8..15 with 16..31.
          const slot = <usize>(((j >> 3) << 4) + (j & 7));
          store<i16>(dst + (slot << 1), <i16>(16 * lo - hi));
          store<i16>(dst + (slot << 1), <i16>hi, 16);
        } else {
          store<i16>(dst + (<usize>j << 1), <i16>lo);
          store<i16>(dst + (<usize>j << 1), <i16>hi, 32);
        }
      }
      // The i16 layout's q4_0 dot is 16 × the true one; the i8 layout's is the true one.
      store<f32>(scales + (<usize>b << 2), q4 && !i8 ? d / 16 : d);
      store<i32>(offsets + (<usize>b << 2), q4 ? (i8 ? sum << 3 : sum << 7) : 0);
    }
  }
  tileTables(xq, T, nb);
}

/** Bytes quantize_x / quantize_x_i8 write for T rows of inF values: the rows, then the tile tables. */
export function xq_bytes(T: i32, inF: i32): usize {
  return <usize>T * xqRowBytes(inF) + (<usize>((T + 3) >> 2) << 5) * <usize>(inF >> 5);
}

/** Quantizes T rows of inF f32 (inF % 32 == 0) into the i16 layout above at xq, for q4_0 if `q4`. */
export function quantize_x(x: usize, xq: usize, T: i32, inF: i32, q4: bool): void {
  quantizeRowsQ(x, xq, T, inF, q4, false);
}

/** The same into the i8 layout of the relaxed-SIMD dot products (linear_*_i8). */
export function quantize_x_i8(x: usize, xq: usize, T: i32, inF: i32, q4: bool): void {
  quantizeRowsQ(x, xq, T, inF, q4, true);
}

// A block's weights are decoded once into up to four vectors (wA..wD) and then dotted with one or
// more activation rows (rowDot):
//  - i16 layout, q8_0: the 32 quants widened to i16 (load8x8_s), against q in order;
//  - i16 layout, q4_0: the nibble bytes widened (b0, b1) and their low nibbles, as common.ts's nibbleDot pairs them;
//  - i8 layout, q8_0: the 32 quants as bytes; x's sign moves onto them (xor, sub), |x| is the 7-bit operand;
//  - i8 layout, q4_0: the low and the high nibbles (0..15), the 7-bit operand against x's signed bytes.

@inline function wA(q: usize, q4: bool, i8: bool): v128 {
  if (i8) return q4 ? v128.and(v128.load(q), i8x16.splat(0x0f)) : v128.load(q);
  return q4 ? v128.and(v128.load8x8_u(q), i16x8.splat(0x0f)) : v128.load8x8_s(q);
}
@inline function wB(q: usize, q4: bool, i8: bool): v128 {
  if (i8) return q4 ? v128.and(i16x8.shr_u(v128.load(q), 4), i8x16.splat(0x0f)) : v128.load(q, 16);
  return q4 ? v128.load8x8_u(q) : v128.load8x8_s(q, 8);
}
@inline function wC(q: usize, q4: bool, i8: bool): v128 {
  if (i8) return i32x4.splat(0);
  return q4 ? v128.and(v128.load8x8_u(q, 8), i16x8.splat(0x0f)) : v128.load8x8_s(q, 16);
}
@inline function wD(q: usize, q4: bool, i8: bool): v128 {
  if (i8) return i32x4.splat(0);
  return q4 ? v128.load8x8_u(q, 8) : v128.load8x8_s(q, 24);
}

/** One decoded block · one activation block at xb: lanes summing to the block's integer dot. */
@inline function rowDot(a: v128, b: v128, c: v128, d: v128, xb: usize, q4: bool, i8: bool): v128 {
  if (i8) {
    // q4_0: nibble · q ≤ 15·127, so a lane of the two blocks' pair sums stays below 2^15.
    if (q4) return i32x4.extadd_pairwise_i16x8_s(i16x8.add(dotI8I7Pairs(v128.load(xb), a), dotI8I7Pairs(v128.load(xb, 16), b)));
    const s0 = v128.load(xb, 32), s1 = v128.load(xb, 48);
    return dotI8I7(i8x16.sub(v128.xor(b, s1), s1), v128.load(xb, 16), dotI8I7(i8x16.sub(v128.xor(a, s0), s0), v128.load(xb), i32x4.splat(0)));
  }
  let r = i32x4.dot_i16x8_s(a, v128.load(xb));
  r = i32x4.add(r, i32x4.dot_i16x8_s(b, v128.load(xb, 16)));
  r = i32x4.add(r, i32x4.dot_i16x8_s(c, v128.load(xb, 32)));
  return i32x4.add(r, i32x4.dot_i16x8_s(d, v128.load(xb, 48)));
}

/** The integer dot of one block (q4_0 in the i16 layout: 16 ×) with one activation block. */
@inline function blockDot(q: usize, xb: usize, q4: bool, i8: bool): v128 {
  return rowDot(wA(q, q4, i8), wB(q, q4, i8), wC(q, q4, i8), wD(q, q4, i8), xb, q4, i8);
}

/** Four f16 weight scales at sp (`exact`: zero and subnormal ones too, see rowScalesNormal). */
@inline function weightScales4(sp: usize, exact: bool): v128 {
  const h = v128.load16x4_s(sp);
  return exact ? half4(h) : f32x4.mul(halfScaled4(h), f32x4.splat(TWO_112));
}

/**
 * Four f16 scales at sp times four f32 activation scales at dp. `exact` decodes zero and subnormal
 * scales exactly; the cheap decoding is exact only for the others (see rowScalesNormal).
 */
@inline function scales4(sp: usize, dp: usize, exact: bool): v128 {
  return f32x4.mul(weightScales4(sp, exact), v128.load(dp));
}

/**
 * Whether the nb f16 scales at sp all have a nonzero exponent: then the row's dot product can use
 * the cheap decoding, a sixth faster than the exact one. Checked per row, which costs little.
 */
function rowScalesNormal(sp: usize, nb: i32): bool {
  let least = i16x8.splat(0x7c00);
  let b = 0;
  for (; b + 8 <= nb; b += 8) least = i16x8.min_u(least, v128.and(v128.load(sp + (<usize>b << 1)), i16x8.splat(0x7c00)));
  let ok = i16x8.all_true(least);
  for (; b < nb; b++) ok = ok && (load<u16>(sp + (<usize>b << 1)) & 0x7c00) != 0;
  return ok;
}

/**
 * One repacked q8_0 or q4_0 (`q4`) row · one quantized activation row; q4_0 subtracts the nibbles'
 * +8 through the activation offsets.
 */
@inline function dotRow(row: usize, xq: usize, nb: i32, pin: usize, exact: bool, q4: bool, i8: bool): f32 {
  const qb: usize = q4 ? 16 : 32;
  let sp = row, q = row + (<usize>nb << 1), xb = xq, dp = xq + (<usize>nb << 6), op = dp + (<usize>nb << 2);
  const end4 = q + <usize>(nb & ~3) * qb;
  let acc = f32x4.splat(0);
  // The i16 kernels: one convert per block, the accumulator stored to `pin` after each (the store
  // is never read; it keeps V8 from scheduling all of a group's loads first and spilling their
  // registers, which costs Node 20's V8 a quarter of the speed).
  while (!i8 && q < end4) {
    const s = scales4(sp, dp, exact);
    if (q4) acc = f32x4.sub(acc, f32x4.mul(s, f32x4.convert_i32x4_s(v128.load(op))));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(blockDot(q, xb, q4, i8)), broadcast(s, 0)));
    v128.store(pin, acc);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(blockDot(q + qb, xb + 64, q4, i8)), broadcast(s, 1)));
    v128.store(pin, acc);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(blockDot(q + 2 * qb, xb + 128, q4, i8)), broadcast(s, 2)));
    v128.store(pin, acc);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(blockDot(q + 3 * qb, xb + 192, q4, i8)), broadcast(s, 3)));
    sp += 8;
    q += 4 * qb;
    xb += 256;
    dp += 16;
    op += 16;
  }
  // The relaxed i8 kernels (Node ≥ 22): four blocks per convert.
  while (i8 && q < end4) {
    let i = sum4(blockDot(q, xb, q4, i8), blockDot(q + qb, xb + 64, q4, i8), blockDot(q + 2 * qb, xb + 128, q4, i8), blockDot(q + 3 * qb, xb + 192, q4, i8));
    if (q4) i = i32x4.sub(i, v128.load(op));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i), scales4(sp, dp, exact)));
    sp += 8;
    q += 4 * qb;
    xb += 256;
    dp += 16;
    op += 16;
  }
  let sum = hadd(acc);
  const end = row + <usize>nb * (qb + 2);
  while (q < end) {
    const d = hsumI32(blockDot(q, xb, q4, i8)) - (q4 ? load<i32>(op) : 0);
    sum += <f32>d * halfAt(sp) * load<f32>(dp);
    sp += 2;
    q += qb;
    xb += 64;
    dp += 4;
    op += 4;
  }
  return sum;
}

/**
 * acc + one block (quants at q, weight scale ws in every lane) · the same block of four activation
 * rows (x0..x3 + xo; tb: the block's entry in their tile table, `offsets` on to its offsets). The
 * weights are decoded once for the four; their four integer dots reduce to one i32x4 (sum4), and
 * one convert and multiply scale all four.
 */
@inline function tileBlock(acc: v128, q: usize, x0: usize, x1: usize, x2: usize, x3: usize, xo: usize, tb: usize, offsets: usize, ws: v128, rows: i32, q4: bool, i8: bool): v128 {
  const a = wA(q, q4, i8), b = wB(q, q4, i8), c = wC(q, q4, i8), d = wD(q, q4, i8);
  const zero = i32x4.splat(0);
  const r2 = rows > 2 ? rowDot(a, b, c, d, x2 + xo, q4, i8) : zero, r3 = rows > 3 ? rowDot(a, b, c, d, x3 + xo, q4, i8) : zero;
  let i = sum4(rowDot(a, b, c, d, x0 + xo, q4, i8), rowDot(a, b, c, d, x1 + xo, q4, i8), r2, r3);
  if (q4) i = i32x4.sub(i, v128.load(tb + offsets));
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i), f32x4.mul(v128.load(tb), ws)));
}

/**
 * One repacked row · `rows` (2, 3 or 4) quantized activation rows (x0..x3; tab: their tile table):
 * the results in the first `rows` lanes.
 */
@inline function dotTile(row: usize, x0: usize, x1: usize, x2: usize, x3: usize, tab: usize, nb: i32, rows: i32, pin: usize, exact: bool, q4: bool, i8: bool): v128 {
  const qb: usize = q4 ? 16 : 32;
  const offsets = <usize>nb << 4;
  let sp = row, q = row + (<usize>nb << 1), xo: usize = 0, tb = tab;
  const end4 = q + <usize>(nb & ~3) * qb, end = q + <usize>nb * qb;
  let acc = f32x4.splat(0);
  while (q < end4) {
    const ws = weightScales4(sp, exact);
    acc = tileBlock(acc, q, x0, x1, x2, x3, xo, tb, offsets, broadcast(ws, 0), rows, q4, i8);
    v128.store(pin, acc);
    acc = tileBlock(acc, q + qb, x0, x1, x2, x3, xo + 64, tb + 16, offsets, broadcast(ws, 1), rows, q4, i8);
    v128.store(pin, acc);
    acc = tileBlock(acc, q + 2 * qb, x0, x1, x2, x3, xo + 128, tb + 32, offsets, broadcast(ws, 2), rows, q4, i8);
    v128.store(pin, acc);
    acc = tileBlock(acc, q + 3 * qb, x0, x1, x2, x3, xo + 192, tb + 48, offsets, broadcast(ws, 3), rows, q4, i8);
    v128.store(pin, acc);
    sp += 8;
    q += 4 * qb;
    xo += 256;
    tb += 64;
  }
  while (q < end) {
    acc = tileBlock(acc, q, x0, x1, x2, x3, xo, tb, offsets, f32x4.splat(halfAt(sp)), rows, q4, i8);
    sp += 2;
    q += qb;
    xo += 64;
    tb += 16;
  }
  return acc;
}

/** Stores the first `rows` lanes of acc at po, po + os, ... */
@inline function storeLanes(acc: v128, po: usize, os: usize, rows: i32): void {
  store<f32>(po, f32x4.extract_lane(acc, 0));
  store<f32>(po + os, f32x4.extract_lane(acc, 1));
  if (rows > 2) store<f32>(po + 2 * os, f32x4.extract_lane(acc, 2));
  if (rows > 3) store<f32>(po + 3 * os, f32x4.extract_lane(acc, 3));
}

/**
 * Outputs o of activation rows [t0, t1) (t0 a multiple of 4) for one weight row: tiles of four
 * rows, then the remainder as one tile of three or two, or one row alone.
 */
@inline function rowsQ(row: usize, xq: usize, T: i32, t0: i32, t1: i32, nb: i32, out: usize, outF: i32, o: i32, pin: usize, exact: bool, q4: bool, i8: bool): void {
  const xs = xqRowBytes(nb << 5);
  const tabs = xq + <usize>T * xs, tabBytes = <usize>nb << 5;
  const os = <usize>outF << 2;
  let t = t0;
  for (; t + 4 <= t1; t += 4) {
    const x0 = xq + <usize>t * xs;
    storeLanes(dotTile(row, x0, x0 + xs, x0 + 2 * xs, x0 + 3 * xs, tabs + <usize>(t >> 2) * tabBytes, nb, 4, pin, exact, q4, i8), out + ((<usize>t * outF + o) << 2), os, 4);
  }
  const left = t1 - t;
  const x0 = xq + <usize>t * xs, tab = tabs + <usize>(t >> 2) * tabBytes, po = out + ((<usize>t * outF + o) << 2);
  if (left == 3) storeLanes(dotTile(row, x0, x0 + xs, x0 + 2 * xs, x0, tab, nb, 3, pin, exact, q4, i8), po, os, 3);
  else if (left == 2) storeLanes(dotTile(row, x0, x0 + xs, x0, x0, tab, nb, 2, pin, exact, q4, i8), po, os, 2);
  else if (left == 1) store<f32>(po, dotRow(row, x0, nb, pin, exact, q4, i8));
}

const ROW_GROUP: i32 = 8;

/** Rows [r0, r1) of a repacked q8_0 or q4_0 (`q4`) weight against xq from quantize_x(…, q4) (_i8 if `i8`). */
@inline function linearQ(xq: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, scratch: usize, q4: bool, i8: bool): void {
  const nb = inF >> 5;
  const stride = <usize>nb * (q4 ? 18 : 34);
  const step = touchChunk(stride);
  for (let c = r0; c < r1; c += step) {
    const e = min(c + step, r1);
    touch(w + <usize>c * stride, <usize>(e - c) * stride, scratch + 16);
    // Groups of ROW_GROUP activation rows over the chunk (in cache now): beyond about eight rows of
    // a 2048-wide layer, one weight row's sweep over all of them no longer fits L1 (measured: 16
    // rows in one sweep ran 7× slower than two sweeps of 8).
    for (let t0 = 0; t0 < T; t0 += ROW_GROUP) {
      const t1 = min(t0 + ROW_GROUP, T);
      for (let o = c; o < e; o++) {
        const row = w + <usize>o * stride;
        if (rowScalesNormal(row, nb)) rowsQ(row, xq, T, t0, t1, nb, out, outF, o, scratch, false, q4, i8);
        else rowsQ(row, xq, T, t0, t1, nb, out, outF, o, scratch, true, q4, i8);
      }
    }
  }
  addBias(bias, out, T, outF, r0, r1);
}

export function linear_q8_0(xq: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, scratch: usize): void {
  linearQ(xq, w, bias, out, T, inF, outF, r0, r1, scratch, false, false);
}

export function linear_q4_0(xq: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, scratch: usize): void {
  linearQ(xq, w, bias, out, T, inF, outF, r0, r1, scratch, true, false);
}

/** q8_0 against quantize_x_i8's layout. Exact only for quants in [-127, 127] (see repack_rows). */
export function linear_q8_0_i8(xq: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, scratch: usize): void {
  linearQ(xq, w, bias, out, T, inF, outF, r0, r1, scratch, false, true);
}

export function linear_q4_0_i8(xq: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, scratch: usize): void {
  linearQ(xq, w, bias, out, T, inF, outF, r0, r1, scratch, true, true);
}

/** 1 in the module built with relaxed SIMD (its linear_*_i8 use the relaxed 8-bit dot product). */
export function kernels_relaxed(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Attention over a dense f32 or f16 cache: causal, grouped-query, optional sliding window
// ---------------------------------------------------------------------------------------------

/** q (f32) · a key row of f16, decoded exactly (half4: no subnormal f32 is formed). */
@inline function dotQHalf(a: usize, k: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const pa = a + (<usize>i << 2), pk = k + (<usize>i << 1);
    s0 = f32x4.add(s0, f32x4.mul(v128.load(pa), half4(v128.load16x4_u(pk))));
    s1 = f32x4.add(s1, f32x4.mul(v128.load(pa, 16), half4(v128.load16x4_u(pk, 8))));
  }
  for (; i + 4 <= n; i += 4) s0 = f32x4.add(s0, f32x4.mul(v128.load(a + (<usize>i << 2)), half4(v128.load16x4_u(k + (<usize>i << 1)))));
  let s = hadd(f32x4.add(s0, s1));
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * halfAt(k + (<usize>i << 1));
  return s;
}

/**
 * Heads [h0, h1) of every query row. q [rows, nHeads·headDim], k/v [capacity, nKVHeads·headDim]
 * in f32, or in f16 when `half` (a constant: each exported kernel is its own specialisation),
 * scores: scratch for startPos + rows f32. Same semantics as the reference attentionDense
 * (noDiag 1: the row's own position is masked).
 */
@inline function attentionRows(q: usize, k: usize, v: usize, out: usize, rows: i32, nHeads: i32, nKVHeads: i32, headDim: i32, scale: f32, startPos: i32, window: i32, noDiag: i32, h0: i32, h1: i32, scores: usize, half: bool): void {
  const kvWidth = nKVHeads * headDim;
  const group = nHeads / nKVHeads;
  const eb: usize = half ? 1 : 2; // log2 of the bytes of one cached element
  for (let t = 0; t < rows; t++) {
    const last = startPos + t - noDiag;
    const first = window > 0 ? max(0, startPos + t - window + 1) : 0;
    for (let h = h0; h < h1; h++) {
      const qp = q + ((<usize>(t * nHeads + h) * headDim) << 2);
      const kvo = (h / group) * headDim;
      let m: f32 = -Infinity;
      for (let j = first; j <= last; j++) {
        const kp = k + ((<usize>(j * kvWidth + kvo)) << eb);
        const s = (half ? dotQHalf(qp, kp, headDim) : dotF32(qp, kp, headDim)) * scale;
        store<f32>(scores + (<usize>j << 2), s);
        if (s > m) m = s;
      }
      let sum: f32 = 0;
      for (let j = first; j <= last; j++) {
        const e = Mathf.exp(load<f32>(scores + (<usize>j << 2)) - m);
        store<f32>(scores + (<usize>j << 2), e);
        sum += e;
      }
      const inv: f32 = 1 / sum;
      const op = out + ((<usize>(t * nHeads + h) * headDim) << 2);
      let d = 0;
      for (; d < headDim; d++) store<f32>(op + (<usize>d << 2), 0);
      for (let j = first; j <= last; j++) {
        const wgt = load<f32>(scores + (<usize>j << 2)) * inv;
        const wv = f32x4.splat(wgt);
        const vp = v + ((<usize>(j * kvWidth + kvo)) << eb);
        d = 0;
        for (; d + 4 <= headDim; d += 4) {
          const p = op + (<usize>d << 2);
          const vals = half ? half4(v128.load16x4_u(vp + (<usize>d << 1))) : v128.load(vp + (<usize>d << 2));
          v128.store(p, f32x4.add(v128.load(p), f32x4.mul(wv, vals)));
        }
        for (; d < headDim; d++) {
          const p = op + (<usize>d << 2);
          store<f32>(p, load<f32>(p) + wgt * (half ? halfAt(vp + (<usize>d << 1)) : load<f32>(vp + (<usize>d << 2))));
        }
      }
    }
  }
}

export function attention(q: usize, k: usize, v: usize, out: usize, rows: i32, nHeads: i32, nKVHeads: i32, headDim: i32, scale: f32, startPos: i32, window: i32, noDiag: i32, h0: i32, h1: i32, scores: usize): void {
  attentionRows(q, k, v, out, rows, nHeads, nKVHeads, headDim, scale, startPos, window, noDiag, h0, h1, scores, false);
}

export function attention_f16(q: usize, k: usize, v: usize, out: usize, rows: i32, nHeads: i32, nKVHeads: i32, headDim: i32, scale: f32, startPos: i32, window: i32, noDiag: i32, h0: i32, h1: i32, scores: usize): void {
  attentionRows(q, k, v, out, rows, nHeads, nKVHeads, headDim, scale, startPos, window, noDiag, h0, h1, scores, true);
}

/** n f32 at src into f16 at dst, rounded to nearest even (the f16 KV cache's writes). */
export function convert_f16(src: usize, dst: usize, n: i32): void {
  for (let i = 0; i < n; i++) store<u16>(dst + (<usize>i << 1), f32ToHalf(load<f32>(src + (<usize>i << 2))));
}

/** f32 -> f16 bits, round to nearest even; overflow to ±Inf, NaN stays NaN. */
@inline function f32ToHalf(x: f32): u16 {
  const b = reinterpret<u32>(x);
  const sign = (b >> 16) & 0x8000;
  const a = b & 0x7fffffff;
  if (a >= 0x7f800000) return <u16>(sign | 0x7c00 | (a > 0x7f800000 ? 0x200 : 0));
  if (a >= 0x477ff000) return <u16>(sign | 0x7c00); // rounds to >= 65520: Inf
  if (a < 0x38800000) {
    // Subnormal half (or zero): |x| < 2^-14. Adding 0.5 aligns the bits so the FPU's own
    // round-to-nearest-even does the rounding: the low mantissa bits of (|x| + 0.5) are the half.
    if (a < 0x33000000) return <u16>sign; // < 2^-25 rounds to zero
    const r = reinterpret<u32>(reinterpret<f32>(a) + 0.5) - 0x3f000000;
    return <u16>(sign | r);
  }
  const mant = a & 0x1fff;
  let h = ((a - 0x38000000) >> 13);
  if (mant > 0x1000 || (mant == 0x1000 && (h & 1))) h++;
  return <u16>(sign | h);
}

// ---------------------------------------------------------------------------------------------
// Element-wise and row-wise ops (the main thread runs these: they are small next to the linears)
// ---------------------------------------------------------------------------------------------

export function rms_norm(x: usize, w: usize, out: usize, rows: i32, dim: i32, eps: f32): void {
  for (let r = 0; r < rows; r++) {
    const xr = x + ((<usize>r * dim) << 2);
    const or = out + ((<usize>r * dim) << 2);
    const ss = dotF32(xr, xr, dim);
    const inv = f32x4.splat(<f32>(1 / Math.sqrt(<f64>ss / dim + eps)));
    const invs = f32x4.extract_lane(inv, 0);
    let i = 0;
    for (; i + 4 <= dim; i += 4) {
      const off = <usize>i << 2;
      v128.store(or + off, f32x4.mul(f32x4.mul(v128.load(xr + off), inv), v128.load(w + off)));
    }
    for (; i < dim; i++) {
      const off = <usize>i << 2;
      store<f32>(or + off, load<f32>(xr + off) * invs * load<f32>(w + off));
    }
  }
}

export function add(a: usize, b: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    v128.store(out + off, f32x4.add(v128.load(a + off), v128.load(b + off)));
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    store<f32>(out + off, load<f32>(a + off) + load<f32>(b + off));
  }
}

export function swiglu(g: usize, u: usize, out: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const off = <usize>i << 2;
    const x = load<f32>(g + off);
    store<f32>(out + off, (x / (1 + Mathf.exp(-x))) * load<f32>(u + off));
  }
}

/** First byte after the module's static data: the backend's allocator starts above it. */
export function heap_base(): usize {
  return __heap_base;
}
export * from './kquants';
export * from './rows';
export * from './codebook4';
export * from './grouped-int';
