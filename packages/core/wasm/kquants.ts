// Linear kernels for llama.cpp's q4_1, q4_k and q6_k weights, read in llama.cpp's byte layouts as
// stored (no repacking, so tensors read back and the TypeScript embedding kernel work unchanged).
// As for q8_0 / q4_0 (kernels.ts), the activation row is quantized to 8 bits per 32-value block
// (step amax / 127) and every weight block meets its activation block in i32x4.dot_i16x8_s, four
// per 32 weights (q6_k: one more per block, for its scales); the weights are decoded inside the
// dot product, one block at a time, and each block's integer dot is scaled in f32.
//
// Each format has its own activation quantizer and layout, arranged for its kernel. All three take
// 72 bytes per 32 values, as quantize_x's layout does, so xq_row_bytes sizes them all.

import { addBias, hadd, half4, halfAt, halfScaled4, hsumI32, nibbleDot, sum4, touch, touchChunk, TWO_112 } from './common';

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

const Q4_1: i32 = 0;
const Q4_K: i32 = 1;
const Q6_K: i32 = 2;

// ---------------------------------------------------------------------------------------------
// Tile tables: after the T quantized rows, for every tile of four rows (the last one repeating row
// T − 1), 32 bytes per 32-value block: the four rows' 4-byte value A, then their 4-byte value B.
// q4_1: A the step / 16, B step·Σq; q4_k: A step / 256, B step·Σq; q6_k: A the step, B the two
// i16 Σq of the block's 16-value groups. The multi-row kernels scale four rows with one multiply.
// ---------------------------------------------------------------------------------------------

/** Byte offsets in one quantized row of block b's values A and B. */
@inline function tileValueA(kind: i32, nb: i32, b: i32): usize {
  if (kind == Q4_1) return (<usize>nb << 6) + (<usize>b << 2);
  return <usize>(b >> 3) * 576 + QUANTS + (<usize>(b & 7) << 2);
}
@inline function tileValueB(kind: i32, nb: i32, b: i32): usize {
  if (kind == Q4_1) return <usize>nb * 68 + (<usize>b << 2);
  return <usize>(b >> 3) * 576 + QUANTS + 32 + (<usize>(b & 7) << 2);
}

function tileTablesK(kind: i32, xq: usize, T: i32, inF: i32): void {
  const nb = inF >> 5;
  const xs = <usize>nb * 72;
  for (let i = 0; i < (T + 3) >> 2; i++) {
    const tab = xq + <usize>T * xs + (<usize>i * nb << 5);
    for (let r = 0; r < 4; r++) {
      const row = xq + <usize>min(4 * i + r, T - 1) * xs;
      for (let b = 0; b < nb; b++) {
        store<u32>(tab + (<usize>b << 5) + (<usize>r << 2), load<u32>(row + tileValueA(kind, nb, b)));
        store<u32>(tab + (<usize>b << 5) + 16 + (<usize>r << 2), load<u32>(row + tileValueB(kind, nb, b)));
      }
    }
  }
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
  tileTablesK(Q4_1, xq, T, inF);
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
  tileTablesK(Q4_K, xq, T, inF);
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
  tileTablesK(Q6_K, xq, T, inF);
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
// Tiles of rows: each weight block decoded once for up to four activation rows (x0..x3), their
// integer dots reduced to one i32x4 over the rows (sum4), scaled with the tile table (tb: the
// block's entry). `rows` (2..4) says how many lanes are real; the others compute nothing.
// ---------------------------------------------------------------------------------------------

/** Σ over the four i16x8 weight vectors a..d against 64 bytes of i16 activations at x (lane total). */
@inline function dot4x8(a: v128, b: v128, c: v128, d: v128, x: usize): v128 {
  let r = i32x4.dot_i16x8_s(a, v128.load(x));
  r = i32x4.add(r, i32x4.dot_i16x8_s(b, v128.load(x, 16)));
  r = i32x4.add(r, i32x4.dot_i16x8_s(c, v128.load(x, 32)));
  return i32x4.add(r, i32x4.dot_i16x8_s(d, v128.load(x, 48)));
}

/** [row 0, .., row 3] of dot4x8 against four activation blocks (x0..x3 + xo). */
@inline function tileDots(a: v128, b: v128, c: v128, d: v128, x0: usize, x1: usize, x2: usize, x3: usize, xo: usize, rows: i32): v128 {
  const zero = i32x4.splat(0);
  return sum4(dot4x8(a, b, c, d, x0 + xo), dot4x8(a, b, c, d, x1 + xo), rows > 2 ? dot4x8(a, b, c, d, x2 + xo) : zero, rows > 3 ? dot4x8(a, b, c, d, x3 + xo) : zero);
}

/** q4_1 rows: the nibbles widen as q4_0's do (see nibbleDot); x = nibble·d + m. */
function tileQ4_1(row: usize, x0: usize, x1: usize, x2: usize, x3: usize, tab: usize, nb: i32, rows: i32): v128 {
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const w = row + <usize>b * 20, tb = tab + (<usize>b << 5);
    const b0 = v128.load8x8_u(w + 4), b1 = v128.load8x8_u(w + 12), m = i16x8.splat(0x0f);
    const i = tileDots(v128.and(b0, m), b0, v128.and(b1, m), b1, x0, x1, x2, x3, <usize>b << 6, rows);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i), f32x4.mul(v128.load(tb), f32x4.splat(halfAt(w)))));
    acc = f32x4.add(acc, f32x4.mul(v128.load(tb, 16), f32x4.splat(halfAt(w + 2))));
  }
  return acc;
}

/** The 6-bit scale (or, `min`, the min) of sub-block j of the q4_k scales at s, as llama.cpp unpacks them. */
@inline function q4kScale(s: usize, j: i32, min: bool): f32 {
  const o: usize = min ? 4 : 0;
  if (j < 4) return <f32>(load<u8>(s + <usize>j + o) & 63);
  const hiBits = (<i32>load<u8>(s + <usize>j - 4 + o) >> 6) << 4;
  const lo = <i32>load<u8>(s + <usize>j + 4);
  return <f32>((min ? lo >> 4 : lo & 15) | hiBits);
}

/** q4_k rows: sub-block j's nibble bytes as pairs (see nibblePairsDot), x = d·sc·nibble − dmin·mn. */
function tileQ4K(row: usize, x0: usize, x1: usize, x2: usize, x3: usize, tab: usize, nsb: i32, rows: i32): v128 {
  let acc = f32x4.splat(0);
  for (let s = 0; s < nsb; s++) {
    const w = row + <usize>s * 144;
    const d = halfAt(w), dmin = halfAt(w + 2);
    for (let j = 0; j < 8; j++) {
      const q = w + 16 + (<usize>(j >> 1) << 5), tb = tab + (<usize>(s * 8 + j) << 5);
      let v0 = v128.load(q), v1 = v128.load(q, 16);
      if (j & 1) {
        v0 = i16x8.shr_u(v0, 4);
        v1 = i16x8.shr_u(v1, 4);
      }
      const pairs = i16x8.splat(0x0f0f), low = i16x8.splat(0x000f);
      const i = tileDots(v128.and(v0, pairs), v128.and(v0, low), v128.and(v1, pairs), v128.and(v1, low), x0, x1, x2, x3, <usize>s * 576 + (<usize>j << 6), rows);
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i), f32x4.mul(v128.load(tb), f32x4.splat(d * q4kScale(w + 4, j, false)))));
      acc = f32x4.sub(acc, f32x4.mul(v128.load(tb, 16), f32x4.splat(dmin * q4kScale(w + 4, j, true))));
    }
  }
  return acc;
}

/** Σ sc·group dot of one q6_k block against one activation block at x: g0, g1 its two 16-value groups. */
@inline function q6kBlockRow(v0: v128, v1: v128, x: usize, scales: v128): v128 {
  return scaled(dot16(v0, x), dot16(v1, x + 32), scales);
}

/** q6_k rows: the 6-bit values assembled as q6kHalf does, x = d·sc·(value − 32). */
function tileQ6K(row: usize, x0: usize, x1: usize, x2: usize, x3: usize, tab: usize, nsb: i32, rows: i32): v128 {
  let acc = f32x4.splat(0);
  const zero = i32x4.splat(0);
  for (let s = 0; s < nsb; s++) {
    const w = row + <usize>s * 210;
    const d = f32x4.splat(halfAt(w + 208));
    for (let j = 0; j < 8; j++) {
      // Block j: half n = j / 4, letter k = j % 4 (A, B, C, D).
      const n = j >> 2, k = j & 3;
      const ql = w + (<usize>n << 6) + (<usize>(k & 1) << 5), qh = w + 128 + (<usize>n << 5), sc = w + 192 + (<usize>n << 3) + (<usize>k << 1);
      const lshift = k >> 1 ? 4 : 0;
      const hshift = k << 1; // bits 2k..2k+1 of qh move to bits 4-5
      const lo0 = i16x8.shr_u(v128.load(ql), lshift), lo1 = i16x8.shr_u(v128.load(ql, 16), lshift);
      const h0 = v128.load(qh), h1 = v128.load(qh, 16);
      const v0 = sixBits(lo0, hshift <= 4 ? i16x8.shl(h0, 4 - hshift) : i16x8.shr_u(h0, hshift - 4));
      const v1 = sixBits(lo1, hshift <= 4 ? i16x8.shl(h1, 4 - hshift) : i16x8.shr_u(h1, hshift - 4));
      const sc0 = <i32>load<i8>(sc), sc1 = <i32>load<i8>(sc, 1);
      const scales = i32x4.splat((sc0 & 0xffff) | (sc1 << 16 & 0xffff0000));
      const wide = i32x4.shuffle(scales, scales, 0, 0, 0, 0);
      // dot16's groups narrowed in pairs: the scales as [sc0 ×4, sc1 ×4] for scaled().
      const byGroup = i16x8.shuffle(wide, wide, 0, 0, 0, 0, 1, 1, 1, 1);
      const xo = <usize>s * 576 + (<usize>j << 6);
      let i = sum4(q6kBlockRow(v0, v1, x0 + xo, byGroup), q6kBlockRow(v0, v1, x1 + xo, byGroup), rows > 2 ? q6kBlockRow(v0, v1, x2 + xo, byGroup) : zero, rows > 3 ? q6kBlockRow(v0, v1, x3 + xo, byGroup) : zero);
      // The −32: 32·(sc0·Σq_g0 + sc1·Σq_g1) of each row, one dot with the table's Σq pairs.
      const tb = tab + (<usize>(s * 8 + j) << 5);
      i = i32x4.sub(i, i32x4.shl(i32x4.dot_i16x8_s(wide, v128.load(tb, 16)), 5));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i), f32x4.mul(v128.load(tb), d)));
    }
  }
  return acc;
}

@inline function tileDot(kind: i32, row: usize, x0: usize, x1: usize, x2: usize, x3: usize, tab: usize, inF: i32, rows: i32): v128 {
  if (kind == Q4_1) return tileQ4_1(row, x0, x1, x2, x3, tab, inF >> 5, rows);
  if (kind == Q4_K) return tileQ4K(row, x0, x1, x2, x3, tab, inF >> 8, rows);
  return tileQ6K(row, x0, x1, x2, x3, tab, inF >> 8, rows);
}

@inline function storeLanesK(acc: v128, po: usize, os: usize, rows: i32): void {
  store<f32>(po, f32x4.extract_lane(acc, 0));
  store<f32>(po + os, f32x4.extract_lane(acc, 1));
  if (rows > 2) store<f32>(po + 2 * os, f32x4.extract_lane(acc, 2));
  if (rows > 3) store<f32>(po + 3 * os, f32x4.extract_lane(acc, 3));
}

/** Output o of activation rows [t0, t1) (t0 a multiple of 4): tiles of 4, then one of 3, or single rows. */
@inline function rowsK(kind: i32, row: usize, xq: usize, T: i32, t0: i32, t1: i32, inF: i32, out: usize, outF: i32, o: i32, pin: usize): void {
  const nb = inF >> 5;
  const xs = <usize>nb * 72, tabs = xq + <usize>T * xs, tabBytes = <usize>nb << 5, os = <usize>outF << 2;
  let t = t0;
  for (; t + 4 <= t1; t += 4) {
    const x0 = xq + <usize>t * xs;
    storeLanesK(tileDot(kind, row, x0, x0 + xs, x0 + 2 * xs, x0 + 3 * xs, tabs + <usize>(t >> 2) * tabBytes, inF, 4), out + ((<usize>t * outF + o) << 2), os, 4);
  }
  const left = t1 - t;
  const x0 = xq + <usize>t * xs, tab = tabs + <usize>(t >> 2) * tabBytes, po = out + ((<usize>t * outF + o) << 2);
  if (left == 3) storeLanesK(tileDot(kind, row, x0, x0 + xs, x0 + 2 * xs, x0, tab, inF, 3), po, os, 3);
  else {
    // One or two rows alone: a tile of two ran slower than two single rows (0.65× on Node 20).
    for (let r = 0; r < left; r++) store<f32>(po + <usize>r * os, rowDot(kind, row, x0 + <usize>r * xs, inF, pin));
  }
}

// ---------------------------------------------------------------------------------------------
// Linear: out[t, o] = x[t] · w[o] + b[o] for o in [r0, r1), x quantized by the format's quantize_x_*
// ---------------------------------------------------------------------------------------------


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
    // Activation rows in groups of eight over the chunk in cache (see kernels.ts's linearQ).
    for (let t0 = 0; t0 < T; t0 += 8) {
      const t1 = min(t0 + 8, T);
      for (let o = c; o < e; o++) rowsK(kind, w + <usize>o * stride, xq, T, t0, t1, inF, out, outF, o, scratch);
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
