// lithe's WebAssembly SIMD kernels (AssemblyScript). Built by build.mjs into one module that every
// thread instantiates over the same shared memory. All arguments are byte addresses into that
// memory and element counts; threaded kernels take the range of output rows (or heads) to compute.
// The TypeScript kernels in src/backends/cpu/kernels are the reference these are tested against.

import { addBias, broadcast, flushSubnormalHalves, hadd, half4, halfAt, halfScaled4, halvesHi, halvesLo, hsumI32, nibbleDot, touch, touchChunk, TWO_112, weightHalf } from './common';

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

export function repack_rows(src: usize, dst: usize, rows: i32, nb: i32, bb: i32): void {
  convertRows(src, dst, rows, nb, bb, true);
}

export function unpack_rows(src: usize, dst: usize, rows: i32, nb: i32, bb: i32): void {
  convertRows(src, dst, rows, nb, bb, false);
}

/** Quantizes T rows of inF f32 (inF % 32 == 0) into the layout above at xq, for q4_0 if `q4`. */
export function quantize_x(x: usize, xq: usize, T: i32, inF: i32, q4: bool): void {
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
        if (q4) {
          // i16 slots: bytes 0..7 of the nibbles pair with slots 0..15, bytes 8..15 with 16..31.
          const slot = <usize>(((j >> 3) << 4) + (j & 7));
          store<i16>(dst + (slot << 1), <i16>(16 * lo - hi));
          store<i16>(dst + (slot << 1), <i16>hi, 16);
        } else {
          store<i16>(dst + (<usize>j << 1), <i16>lo);
          store<i16>(dst + (<usize>j << 1), <i16>hi, 32);
        }
      }
      store<f32>(scales + (<usize>b << 2), q4 ? d / 16 : d);
      store<i32>(offsets + (<usize>b << 2), q4 ? sum << 7 : 0);
    }
  }
}

@inline function q8BlockDot(q: usize, xb: usize): v128 {
  let d = i32x4.dot_i16x8_s(v128.load8x8_s(q), v128.load(xb));
  d = i32x4.add(d, i32x4.dot_i16x8_s(v128.load8x8_s(q, 8), v128.load(xb, 16)));
  d = i32x4.add(d, i32x4.dot_i16x8_s(v128.load8x8_s(q, 16), v128.load(xb, 32)));
  return i32x4.add(d, i32x4.dot_i16x8_s(v128.load8x8_s(q, 24), v128.load(xb, 48)));
}

/**
 * Four f16 scales at sp times four f32 activation scales at dp. `exact` decodes zero and subnormal
 * scales exactly; the cheap decoding is exact only for the others (see rowScalesNormal).
 */
@inline function scales4(sp: usize, dp: usize, exact: bool): v128 {
  const h = v128.load16x4_s(sp);
  return f32x4.mul(exact ? half4(h) : f32x4.mul(halfScaled4(h), f32x4.splat(TWO_112)), v128.load(dp));
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

/** The integer dot of one block: q8_0 quants widen as they load; q4_0's is 16 × (see nibbleDot). */
@inline function blockDot(q: usize, xb: usize, q4: bool): v128 {
  return q4 ? nibbleDot(q, xb) : q8BlockDot(q, xb);
}

/**
 * One repacked q8_0 or q4_0 (`q4`) row · one quantized activation row. The accumulator is stored
 * to `pin` after each block: the store is never read, and keeps V8 from scheduling all sixteen of
 * a group's loads first and spilling their registers. q4_0 subtracts the nibbles' +8 through the
 * activation offsets.
 */
@inline function dotRow(row: usize, xq: usize, nb: i32, pin: usize, exact: bool, q4: bool): f32 {
  const qb: usize = q4 ? 16 : 32;
  let sp = row, q = row + (<usize>nb << 1), xb = xq, dp = xq + (<usize>nb << 6), op = dp + (<usize>nb << 2);
  const end4 = q + <usize>(nb & ~3) * qb;
  let acc = f32x4.splat(0);
  while (q < end4) {
    const s = scales4(sp, dp, exact);
    if (q4) acc = f32x4.sub(acc, f32x4.mul(s, f32x4.convert_i32x4_s(v128.load(op))));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(blockDot(q, xb, q4)), broadcast(s, 0)));
    v128.store(pin, acc);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(blockDot(q + qb, xb + 64, q4)), broadcast(s, 1)));
    v128.store(pin, acc);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(blockDot(q + 2 * qb, xb + 128, q4)), broadcast(s, 2)));
    v128.store(pin, acc);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(blockDot(q + 3 * qb, xb + 192, q4)), broadcast(s, 3)));
    sp += 8;
    q += 4 * qb;
    xb += 256;
    dp += 16;
    op += 16;
  }
  let sum = hadd(acc);
  const end = row + <usize>nb * (qb + 2);
  while (q < end) {
    const d = hsumI32(blockDot(q, xb, q4)) - (q4 ? load<i32>(op) : 0);
    sum += <f32>d * halfAt(sp) * load<f32>(dp);
    sp += 2;
    q += qb;
    xb += 64;
    dp += 4;
    op += 4;
  }
  return sum;
}

/** Rows [r0, r1) of a repacked q8_0 or q4_0 (`q4`) weight against xq from quantize_x(…, q4). */
@inline function linearQ(xq: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, scratch: usize, q4: bool): void {
  const nb = inF >> 5;
  const stride = <usize>nb * (q4 ? 18 : 34);
  const xs = xqRowBytes(inF);
  const step = touchChunk(stride);
  for (let c = r0; c < r1; c += step) {
    const e = min(c + step, r1);
    touch(w + <usize>c * stride, <usize>(e - c) * stride, scratch + 16);
    for (let o = c; o < e; o++) {
      const row = w + <usize>o * stride;
      if (rowScalesNormal(row, nb)) {
        for (let t = 0; t < T; t++) store<f32>(out + ((<usize>t * outF + o) << 2), dotRow(row, xq + <usize>t * xs, nb, scratch, false, q4));
      } else {
        for (let t = 0; t < T; t++) store<f32>(out + ((<usize>t * outF + o) << 2), dotRow(row, xq + <usize>t * xs, nb, scratch, true, q4));
      }
    }
  }
  addBias(bias, out, T, outF, r0, r1);
}

export function linear_q8_0(xq: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, scratch: usize): void {
  linearQ(xq, w, bias, out, T, inF, outF, r0, r1, scratch, false);
}

export function linear_q4_0(xq: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, scratch: usize): void {
  linearQ(xq, w, bias, out, T, inF, outF, r0, r1, scratch, true);
}

// ---------------------------------------------------------------------------------------------
// Attention over a dense f32 cache: causal, grouped-query, optional sliding window
// ---------------------------------------------------------------------------------------------

/**
 * Heads [h0, h1) of every query row. q [rows, nHeads·headDim], k/v [capacity, nKVHeads·headDim],
 * scores: scratch for startPos + rows f32. Same semantics as the reference attentionDense.
 */
export function attention(q: usize, k: usize, v: usize, out: usize, rows: i32, nHeads: i32, nKVHeads: i32, headDim: i32, scale: f32, startPos: i32, window: i32, h0: i32, h1: i32, scores: usize): void {
  const kvWidth = nKVHeads * headDim;
  const group = nHeads / nKVHeads;
  for (let t = 0; t < rows; t++) {
    const last = startPos + t;
    const first = window > 0 ? max(0, last - window + 1) : 0;
    for (let h = h0; h < h1; h++) {
      const qp = q + ((<usize>(t * nHeads + h) * headDim) << 2);
      const kvo = (h / group) * headDim;
      let m: f32 = -Infinity;
      for (let j = first; j <= last; j++) {
        const s = dotF32(qp, k + ((<usize>(j * kvWidth + kvo)) << 2), headDim) * scale;
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
        const vp = v + ((<usize>(j * kvWidth + kvo)) << 2);
        d = 0;
        for (; d + 4 <= headDim; d += 4) {
          const p = op + (<usize>d << 2);
          v128.store(p, f32x4.add(v128.load(p), f32x4.mul(wv, v128.load(vp + (<usize>d << 2)))));
        }
        for (; d < headDim; d++) {
          const p = op + (<usize>d << 2);
          store<f32>(p, load<f32>(p) + wgt * load<f32>(vp + (<usize>d << 2)));
        }
      }
    }
  }
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
