// Linear kernels for llama.cpp's q4_1, q4_k and q6_k weights, read in llama.cpp's byte layouts as
// stored (no repacking, so tensors read back and the TypeScript embedding kernel work unchanged).
// As for q8_0 / q4_0 (kernels.ts), the activation row is quantized to 8 bits per 32-value block
// (step amax / 127) and every weight block meets its activation block in i32x4.dot_i16x8_s, four
// per 32 weights (q6_k: one more per block, for its scales); the weights are decoded inside the
// dot product, one block at a time, and each block's integer dot is scaled in f32.
//
// Each format has its own activation quantizer and layout, arranged for its kernel. All three take
// 72 bytes per 32 values, as quantize_x's layout does, so xq_row_bytes sizes them all.

import { addBias, hadd, half4, halfAt, halfScaled4, hsumI32, nibbleDot, touch, touchChunk, TWO_112 } from './common';

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

@inline function blockAmax(src: usize): f32 {
  let m = f32x4.splat(0);
  for (let k = 0; k < 8; k++) m = f32x4.max(m, f32x4.abs(v128.load(src + (<usize>k << 4))));
  return max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
}

/** The 8 f32 at src times inv, rounded to nearest (as quantize_x does), as eight i16. */
@inline function round8(src: usize, inv: v128): v128 {
  const a = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src), inv)));
  const b = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src, 16), inv)));
  return i16x8.narrow_i32x4_s(a, b);
}

/** Σ of the eight i16 lanes. */
@inline function sumI16(v: v128): i32 {
  return hsumI32(i32x4.extadd_pairwise_i16x8_s(v));
}

/** [Σa, Σb, Σc, Σd]: the lane sums of four i32x4 (one convert and multiply then serves four blocks). */
@inline function sum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(i32x4.shuffle(c, d, 0, 4, 1, 5), i32x4.shuffle(c, d, 2, 6, 3, 7));
  return i32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

// k-quant activations, per 256 values: 512 bytes of i16 quants, then 64 bytes of per-block data.
const QUANTS: usize = 512;

// ---------------------------------------------------------------------------------------------
// q4_1: 32 values in 20 bytes: f16 d, f16 m, 16 bytes of nibbles as q4_0's; x = nibble·d + m
// ---------------------------------------------------------------------------------------------
//
// Activations, per row: nb blocks of 32 i16 in quantize_x's q4_0 order (Y2 = 16·q[j] − q[16 + j]
// meets the low nibble of byte j, Y1 = q[16 + j] the whole byte, so the integer dot is 16·Σ
// nibble·q with no shift), then nb f32 steps / 16, then nb f32 step·Σq: the m term of a block is
// m·step·Σq.

export function quantize_x_q4_1(x: usize, xq: usize, T: i32, inF: i32): void {
  const nb = inF >> 5;
  for (let t = 0; t < T; t++) {
    const row = x + ((<usize>t * inF) << 2);
    const q = xq + <usize>t * nb * 72;
    const steps = q + (<usize>nb << 6);
    const sums = steps + (<usize>nb << 2);
    for (let b = 0; b < nb; b++) {
      const src = row + (<usize>b << 7);
      const amax = blockAmax(src);
      const inv = f32x4.splat(amax > 0 ? 127 / amax : 0);
      const lo0 = round8(src, inv), lo1 = round8(src + 32, inv);
      const hi0 = round8(src + 64, inv), hi1 = round8(src + 96, inv);
      const dst = q + (<usize>b << 6);
      v128.store(dst, i16x8.sub(i16x8.shl(lo0, 4), hi0));
      v128.store(dst, hi0, 16);
      v128.store(dst, i16x8.sub(i16x8.shl(lo1, 4), hi1), 32);
      v128.store(dst, hi1, 48);
      const step: f32 = amax / 127;
      store<f32>(steps + (<usize>b << 2), step / 16);
      store<f32>(sums + (<usize>b << 2), step * <f32>sumI16(i16x8.add(i16x8.add(lo0, lo1), i16x8.add(hi0, hi1))));
    }
  }
}

// The row dots store each block's integer dot to `pin`. The store is never read: it keeps V8 from
// scheduling all of a group's loads first and spilling their registers (see kernels.ts).

function dotQ4_1(row: usize, xq: usize, nb: i32, pin: usize): f32 {
  let w = row, xb = xq, sp = xq + (<usize>nb << 6), mp = sp + (<usize>nb << 2);
  const end4 = row + <usize>(nb & ~3) * 20;
  let acc = f32x4.splat(0);
  while (w < end4) {
    // Four blocks' (d, m) pairs, one i32 lane each: d in the low half, m in the high one.
    let dm = v128.load32_zero(w);
    dm = v128.load32_lane(w, dm, 1, 20);
    dm = v128.load32_lane(w, dm, 2, 40);
    dm = v128.load32_lane(w, dm, 3, 60);
    let d: v128, m: v128;
    if (v128.any_true(i16x8.eq(v128.and(dm, i16x8.splat(0x7c00)), i16x8.splat(0)))) {
      // A zero or subnormal among them (rare in q4_1: d is the block's range / 15).
      d = half4(dm);
      m = half4(i32x4.shr_u(dm, 16));
    } else {
      // All normal: halfScaled is exact for them, and cheaper.
      d = f32x4.mul(halfScaled4(i32x4.shr_s(i32x4.shl(dm, 16), 16)), f32x4.splat(TWO_112));
      m = f32x4.mul(halfScaled4(i32x4.shr_s(dm, 16)), f32x4.splat(TWO_112));
    }
    const i0 = nibbleDot(w + 4, xb);
    v128.store(pin, i0);
    const i1 = nibbleDot(w + 24, xb + 64);
    v128.store(pin, i1);
    const i2 = nibbleDot(w + 44, xb + 128);
    v128.store(pin, i2);
    const i3 = nibbleDot(w + 64, xb + 192);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(sum4(i0, i1, i2, i3)), f32x4.mul(d, v128.load(sp))));
    acc = f32x4.add(acc, f32x4.mul(m, v128.load(mp)));
    w += 80;
    xb += 256;
    sp += 16;
    mp += 16;
  }
  let sum = hadd(acc);
  const end = row + <usize>nb * 20;
  while (w < end) {
    sum += <f32>hsumI32(nibbleDot(w + 4, xb)) * halfAt(w) * load<f32>(sp) + halfAt(w + 2) * load<f32>(mp);
    w += 20;
    xb += 64;
    sp += 4;
    mp += 4;
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------
// q4_k: 256 values in 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes
// ---------------------------------------------------------------------------------------------
//
// Sub-block j of 32 values has scale sc_j and min mn_j (6 bits): x = d·sc_j·nibble − dmin·mn_j.
// Sub-blocks come in pairs over 32 bytes: the even one in the low nibbles, the odd one in the high.
// The kernel dots 16 quant bytes at a time without widening them: an i16 lane holds two values
// (v_e + 256·v_o, after a mask, or a shift and a mask for the high nibbles), and the activations
// come in pairs to match, q_o and 256·q_e − q_o (|·| ≤ 32639 fits i16): the lane's two products
// sum to 256·(v_e·q_e + v_o·q_o). Steps are stored divided by 256.
//
// Activations, per 256 values: 8 blocks of 32 values, each two chunks of 16 as [8 × q_o][8 ×
// (256·q_e − q_o)], then 8 f32 steps / 256, then 8 f32 step·Σq (for the mins).

export function quantize_x_q4_k(x: usize, xq: usize, T: i32, inF: i32): void {
  const nsb = inF >> 8;
  for (let t = 0; t < T; t++) {
    const row = x + ((<usize>t * inF) << 2);
    for (let s = 0; s < nsb; s++) {
      const dst = xq + (<usize>t * nsb + s) * 576;
      for (let j = 0; j < 8; j++) {
        const src = row + (<usize>(s * 8 + j) << 7);
        const amax = blockAmax(src);
        const inv = f32x4.splat(amax > 0 ? 127 / amax : 0);
        let sum = 0;
        for (let k = 0; k < 2; k++) {
          const a = round8(src + (<usize>k << 6), inv), b = round8(src + (<usize>k << 6) + 32, inv);
          const even = i16x8.shuffle(a, b, 0, 2, 4, 6, 8, 10, 12, 14), odd = i16x8.shuffle(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
          const chunk = dst + (<usize>j << 6) + (<usize>k << 5);
          v128.store(chunk, odd);
          v128.store(chunk, i16x8.sub(i16x8.shl(even, 8), odd), 16);
          sum += sumI16(i16x8.add(a, b));
        }
        const step: f32 = amax / 127;
        store<f32>(dst + QUANTS + (<usize>j << 2), step / 256);
        store<f32>(dst + QUANTS + 32 + (<usize>j << 2), step * <f32>sum);
      }
    }
  }
}

/**
 * 256·Σ nibble·q over 16 values: the low nibbles of the 16 bytes in v against one 32-byte chunk of
 * the pair layout above (the i16 lane of bytes 2i, 2i + 1 masked to lo_e + 256·lo_o meets q_o; its
 * low byte alone, lo_e, meets 256·q_e − q_o).
 */
@inline function nibblePairsDot(v: v128, x: usize): v128 {
  const pairs = i32x4.dot_i16x8_s(v128.and(v, i16x8.splat(0x0f0f)), v128.load(x));
  return i32x4.add(pairs, i32x4.dot_i16x8_s(v128.and(v, i16x8.splat(0x000f)), v128.load(x, 16)));
}

/** Integer dots of the four blocks of the two pairs at q, as [a, b, c, d]. */
@inline function q4kHalf(q: usize, x: usize, pin: usize): v128 {
  let v0 = v128.load(q), v1 = v128.load(q, 16);
  const a = i32x4.add(nibblePairsDot(v0, x), nibblePairsDot(v1, x + 32));
  v128.store(pin, a);
  const b = i32x4.add(nibblePairsDot(i16x8.shr_u(v0, 4), x + 64), nibblePairsDot(i16x8.shr_u(v1, 4), x + 96));
  v128.store(pin, b);
  v0 = v128.load(q, 32);
  v1 = v128.load(q, 48);
  const c = i32x4.add(nibblePairsDot(v0, x + 128), nibblePairsDot(v1, x + 160));
  v128.store(pin, c);
  const d = i32x4.add(nibblePairsDot(i16x8.shr_u(v0, 4), x + 192), nibblePairsDot(i16x8.shr_u(v1, 4), x + 224));
  return sum4(a, b, c, d);
}

function dotQ4K(row: usize, xq: usize, nsb: i32, pin: usize): f32 {
  let w = row, xb = xq;
  const end = row + <usize>nsb * 144;
  let acc = f32x4.splat(0);
  while (w < end) {
    // The eight 6-bit scales and mins, unpacked as llama.cpp does: bytes sc0..7, then mn0..7.
    const u0 = load<i32>(w, 4), u1 = load<i32>(w, 8), u2 = load<i32>(w, 12);
    let s = i32x4.splat(u0 & 0x3f3f3f3f);
    s = i32x4.replace_lane(s, 1, (u2 & 0x0f0f0f0f) | (((u0 >>> 6) & 0x03030303) << 4));
    s = i32x4.replace_lane(s, 2, u1 & 0x3f3f3f3f);
    s = i32x4.replace_lane(s, 3, ((u2 >>> 4) & 0x0f0f0f0f) | (((u1 >>> 6) & 0x03030303) << 4));
    const sc = i16x8.extend_low_i8x16_u(s), mn = i16x8.extend_high_i8x16_u(s);
    const d = f32x4.splat(halfAt(w)), dmin = f32x4.splat(halfAt(w + 2));
    const steps = xb + QUANTS, sums = xb + QUANTS + 32;
    // x = d·sc·nibble − dmin·mn: the dots of blocks 0..3 and 4..7, less the mins.
    const f0 = f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(sc)), v128.load(steps)), d);
    const f1 = f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(sc)), v128.load(steps, 16)), d);
    const m0 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(mn)), v128.load(sums));
    const m1 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(mn)), v128.load(sums, 16));
    acc = f32x4.sub(acc, f32x4.mul(f32x4.add(m0, m1), dmin));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(q4kHalf(w + 16, xb, pin)), f0));
    v128.store(pin, acc);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(q4kHalf(w + 80, xb + 256, pin)), f1));
    w += 144;
    xb += 576;
  }
  return hadd(acc);
}

// ---------------------------------------------------------------------------------------------
// q6_k: 256 values in 210 bytes: 128 bytes low 4 bits, 64 bytes high 2 bits, 16 i8 scales, f16 d
// ---------------------------------------------------------------------------------------------
//
// Each half of 128 values holds four blocks A, B, C, D of 32 (ql: 64 bytes, qh: 32, scales: 8):
// value l of A is ql[l] & 15 with bits 0-1 of qh[l] above it, B ql[32 + l] & 15 with bits 2-3,
// C ql[l] >> 4 with bits 4-5, D ql[32 + l] >> 4 with bits 6-7; x = d·sc·(value − 32), one i8 scale
// per 16 values (A: scales 0, 1; B: 2, 3; ...). The kernel assembles the 6-bit values 16 bytes at
// a time, widens them to i16 and dots them with the activations: a 16-value group's dot has lanes
// |Σ of 4 products| ≤ 4·63·127, within i16, so a block's two groups narrow into one i16x8 whose
// dot with the block's scales gives Σ sc·Σ value·q for the block in one more dot_i16x8_s. The −32
// is Σ sc·32·Σq, again one dot per half with the 16-value sums of q.
//
// Activations, per 256 values: 8 blocks of 32 i16 in order, 8 f32 steps, then 16 i16 Σq of each
// 16 values.

/** Natural-order i16 quants of the 32 f32 at src (step amax/127) into dst; returns Σq. */
@inline function quantizeBlock(src: usize, dst: usize, inv: v128): i32 {
  const q0 = round8(src, inv), q1 = round8(src + 32, inv), q2 = round8(src + 64, inv), q3 = round8(src + 96, inv);
  v128.store(dst, q0);
  v128.store(dst, q1, 16);
  v128.store(dst, q2, 32);
  v128.store(dst, q3, 48);
  return sumI16(i16x8.add(i16x8.add(q0, q1), i16x8.add(q2, q3)));
}

export function quantize_x_q6_k(x: usize, xq: usize, T: i32, inF: i32): void {
  const nsb = inF >> 8;
  for (let t = 0; t < T; t++) {
    const row = x + ((<usize>t * inF) << 2);
    for (let s = 0; s < nsb; s++) {
      const dst = xq + (<usize>t * nsb + s) * 576;
      for (let j = 0; j < 8; j++) {
        const src = row + (<usize>(s * 8 + j) << 7);
        const amax = blockAmax(src);
        const q = dst + (<usize>j << 6);
        quantizeBlock(src, q, f32x4.splat(amax > 0 ? 127 / amax : 0));
        store<f32>(dst + QUANTS + (<usize>j << 2), amax / 127);
        store<i16>(dst + QUANTS + 32 + (<usize>j << 2), <i16>sumI16(i16x8.add(v128.load(q), v128.load(q, 16))));
        store<i16>(dst + QUANTS + 34 + (<usize>j << 2), <i16>sumI16(i16x8.add(v128.load(q, 32), v128.load(q, 48))));
      }
    }
  }
}

/** 16 six-bit values as bytes: the low nibbles of `lo` with bits 4-5 of `hi` above them. */
@inline function sixBits(lo: v128, hi: v128): v128 {
  return v128.or(v128.and(lo, i8x16.splat(0x0f)), v128.and(hi, i8x16.splat(0x30)));
}

/** Dot of 16 unsigned byte values with 16 i16 activations at x (lanes: sums of 4 products). */
@inline function dot16(v: v128, x: usize): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(v), v128.load(x)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(v), v128.load(x, 16)));
}

/** Σ over a block's two 16-value groups of scale · group dot (g0, g1: the groups' dots). */
@inline function scaled(g0: v128, g1: v128, scales: v128): v128 {
  return i32x4.dot_i16x8_s(i16x8.narrow_i32x4_s(g0, g1), scales);
}

/**
 * The four blocks of one half: ql, qh, sc its bytes, x its activation blocks, sq its 16-value Σq.
 * Returns [A, B, C, D]: Σ sc·(value − 32)·q of each block.
 */
@inline function q6kHalf(ql: usize, qh: usize, sc: usize, x: usize, sq: usize, pin: usize): v128 {
  // Values 0..15 of each block.
  let l1 = v128.load(ql), l2 = v128.load(ql, 32), h = v128.load(qh);
  const a = dot16(sixBits(l1, i16x8.shl(h, 4)), x);
  v128.store(pin, a);
  const b = dot16(sixBits(l2, i16x8.shl(h, 2)), x + 64);
  v128.store(pin, b);
  const c = dot16(sixBits(i16x8.shr_u(l1, 4), h), x + 128);
  v128.store(pin, c);
  const d = dot16(sixBits(i16x8.shr_u(l2, 4), i16x8.shr_u(h, 2)), x + 192);
  v128.store(pin, d);
  // Values 16..31; the scales as i16: A0 A1 B0 B1 C0 C1 D0 D1.
  l1 = v128.load(ql, 16);
  l2 = v128.load(ql, 48);
  h = v128.load(qh, 16);
  const s = v128.load8x8_s(sc);
  // Each block's two scales, four lanes each (unpack and pshufd rather than a byte shuffle).
  const s01 = i16x8.shuffle(s, s, 0, 0, 1, 1, 2, 2, 3, 3), s23 = i16x8.shuffle(s, s, 4, 4, 5, 5, 6, 6, 7, 7);
  const pa = scaled(a, dot16(sixBits(l1, i16x8.shl(h, 4)), x + 32), i32x4.shuffle(s01, s01, 0, 0, 1, 1));
  v128.store(pin, pa);
  const pb = scaled(b, dot16(sixBits(l2, i16x8.shl(h, 2)), x + 96), i32x4.shuffle(s01, s01, 2, 2, 3, 3));
  v128.store(pin, pb);
  const pc = scaled(c, dot16(sixBits(i16x8.shr_u(l1, 4), h), x + 160), i32x4.shuffle(s23, s23, 0, 0, 1, 1));
  v128.store(pin, pc);
  const pd = scaled(d, dot16(sixBits(i16x8.shr_u(l2, 4), i16x8.shr_u(h, 2)), x + 224), i32x4.shuffle(s23, s23, 2, 2, 3, 3));
  // The −32: Σ sc·32·Σq per block.
  return i32x4.sub(sum4(pa, pb, pc, pd), i32x4.shl(i32x4.dot_i16x8_s(s, v128.load(sq)), 5));
}

function dotQ6K(row: usize, xq: usize, nsb: i32, pin: usize): f32 {
  let w = row, xb = xq;
  const end = row + <usize>nsb * 210;
  let acc = f32x4.splat(0);
  while (w < end) {
    const d = f32x4.splat(halfAt(w + 208));
    const steps = xb + QUANTS, sq = xb + QUANTS + 32;
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(q6kHalf(w, w + 128, w + 192, xb, sq, pin)), f32x4.mul(v128.load(steps), d)));
    v128.store(pin, acc);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(q6kHalf(w + 64, w + 160, w + 200, xb + 256, sq + 16, pin)), f32x4.mul(v128.load(steps, 16), d)));
    w += 210;
    xb += 576;
  }
  return hadd(acc);
}

// ---------------------------------------------------------------------------------------------
// Linear: out[t, o] = x[t] · w[o] + b[o] for o in [r0, r1), x quantized by the format's quantize_x_*
// ---------------------------------------------------------------------------------------------

const Q4_1: i32 = 0;
const Q4_K: i32 = 1;
const Q6_K: i32 = 2;

@inline function rowDot(kind: i32, row: usize, xq: usize, inF: i32, pin: usize): f32 {
  if (kind == Q4_1) return dotQ4_1(row, xq, inF >> 5, pin);
  if (kind == Q4_K) return dotQ4K(row, xq, inF >> 8, pin);
  return dotQ6K(row, xq, inF >> 8, pin);
}

@inline function linearRows(kind: i32, xq: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, scratch: usize): void {
  const stride: usize = kind == Q4_1 ? <usize>(inF >> 5) * 20 : <usize>(inF >> 8) * (kind == Q4_K ? 144 : 210);
  const xs = <usize>(inF >> 5) * 72;
  const step = touchChunk(stride);
  for (let c = r0; c < r1; c += step) {
    const e = min(c + step, r1);
    touch(w + <usize>c * stride, <usize>(e - c) * stride, scratch + 16);
    for (let o = c; o < e; o++) {
      for (let t = 0; t < T; t++) store<f32>(out + ((<usize>t * outF + o) << 2), rowDot(kind, w + <usize>o * stride, xq + <usize>t * xs, inF, scratch));
    }
  }
  addBias(bias, out, T, outF, r0, r1);
}

/** xq from quantize_x_q4_1; w: llama.cpp q4_1 rows of inF / 32 blocks. */
export function linear_q4_1(xq: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, scratch: usize): void {
  linearRows(Q4_1, xq, w, bias, out, T, inF, outF, r0, r1, scratch);
}

/** xq from quantize_x_q4_k; w: llama.cpp q4_k rows of inF / 256 super-blocks. */
export function linear_q4_k(xq: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, scratch: usize): void {
  linearRows(Q4_K, xq, w, bias, out, T, inF, outF, r0, r1, scratch);
}

/** xq from quantize_x_q6_k; w: llama.cpp q6_k rows of inF / 256 super-blocks. */
export function linear_q6_k(xq: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, scratch: usize): void {
  linearRows(Q6_K, xq, w, bias, out, T, inF, outF, r0, r1, scratch);
}
