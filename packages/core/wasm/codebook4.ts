// Linear for 4-bit codebook weights: element e of the flattened [outF, inF] matrix is
// codebook[code(e)] · scale(block of e), the code of element 2j in the high nibble of byte j and 16
// f32 codebook values (NF4 and FP4 as bitsandbytes stores them; @lithe/nf4 registers this kernel).
// A block's scale is stored as f32, or as an 8-bit code into a 256-entry map times the block of
// scales' own f32 scale, plus an offset (bitsandbytes' double quantization).
//
// Rows of inF values in whole blocks. One activation row: each byte of codes picks a pair of f32
// codebook values from a 256-entry table (built per call in the thread's scratch), so two weights
// come in one 8-byte load and meet x in f32x4 products; the block's partial sum is scaled once.
// More rows: each weight row is decoded once into the thread's scratch (codebook · scale rounded
// to f32, as the reference decodes it) and dotted with the activation rows, four at a time.

import { addBias, hadd, touch, touchChunk } from './common';

// Per-thread scratch: 32 bytes for touch, the 2 KB pair table, then one decoded weight row.
const PAIRS: usize = 64;
const ROW: usize = PAIRS + 2048;

/** Bytes of per-thread scratch linear_cb4 needs for rows of inF values. */
export function cb4_scratch_bytes(inF: i32): usize {
  return ROW + (<usize>inF << 2);
}

@inline function blockScale(b: usize, scales: usize, codes8: usize, nested: usize, map: usize, nestedBlock: i32, offset: f32): f32 {
  if (scales != 0) return load<f32>(scales + (b << 2));
  return load<f32>(map + (<usize>load<u8>(codes8 + b) << 2)) * load<f32>(nested + ((b / <usize>nestedBlock) << 2)) + offset;
}

/** One activation row · weight row o (blocks of B starting at element o·inF). */
@inline function dotRowCb4(codes: usize, x: usize, o: i32, inF: i32, B: i32, pairs: usize, scales: usize, codes8: usize, nested: usize, map: usize, nestedBlock: i32, offset: f32): f32 {
  const first = <usize>o * inF;
  let sum: f32 = 0;
  for (let k = 0; k < inF; k += B) {
    const e = first + <usize>k;
    let cp = codes + (e >> 1);
    const end = cp + (<usize>B >> 1);
    let xp = x + (<usize>k << 2);
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
    for (; cp + 4 <= end; cp += 4, xp += 32) {
      const v = load<u32>(cp);
      let w0 = v128.load64_zero(pairs + ((<usize>v & 0xff) << 3));
      w0 = v128.load64_lane(pairs + (((<usize>v >> 8) & 0xff) << 3), w0, 1);
      let w1 = v128.load64_zero(pairs + (((<usize>v >> 16) & 0xff) << 3));
      w1 = v128.load64_lane(pairs + ((<usize>v >> 24) << 3), w1, 1);
      a0 = f32x4.add(a0, f32x4.mul(w0, v128.load(xp)));
      a1 = f32x4.add(a1, f32x4.mul(w1, v128.load(xp, 16)));
    }
    let s = hadd(f32x4.add(a0, a1));
    for (; cp < end; cp++, xp += 8) {
      const p = pairs + (<usize>load<u8>(cp) << 3);
      s += load<f32>(p) * load<f32>(xp) + load<f32>(p, 4) * load<f32>(xp, 4);
    }
    sum += blockScale(e / <usize>B, scales, codes8, nested, map, nestedBlock, offset) * s;
  }
  return sum;
}

/** Weight row o decoded into dst: codebook · scale, rounded to f32. */
function decodeRowCb4(codes: usize, o: i32, inF: i32, B: i32, codebook: usize, dst: usize, scales: usize, codes8: usize, nested: usize, map: usize, nestedBlock: i32, offset: f32): void {
  const first = <usize>o * inF;
  for (let k = 0; k < inF; k += B) {
    const e = first + <usize>k;
    const s = blockScale(e / <usize>B, scales, codes8, nested, map, nestedBlock, offset);
    const cp = codes + (e >> 1);
    for (let j = 0; j < B >> 1; j++) {
      const v = <usize>load<u8>(cp + <usize>j);
      const d = dst + (<usize>(k + 2 * j) << 2);
      store<f32>(d, load<f32>(codebook + ((v >> 4) << 2)) * s);
      store<f32>(d, load<f32>(codebook + ((v & 15) << 2)) * s, 4);
    }
  }
}

@inline function dotF32(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    s0 = f32x4.add(s0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    s1 = f32x4.add(s1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
  }
  let s = hadd(f32x4.add(s0, s1));
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/** One decoded row w · four activation rows at x, x + xs, ..: the four sums. */
@inline function dot4RowsF32(w: usize, x: usize, xs: usize, n: i32): v128 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const wv = v128.load(w + o);
    a0 = f32x4.add(a0, f32x4.mul(wv, v128.load(x + o)));
    a1 = f32x4.add(a1, f32x4.mul(wv, v128.load(x + xs + o)));
    a2 = f32x4.add(a2, f32x4.mul(wv, v128.load(x + 2 * xs + o)));
    a3 = f32x4.add(a3, f32x4.mul(wv, v128.load(x + 3 * xs + o)));
  }
  let r = f32x4.replace_lane(f32x4.splat(hadd(a0)), 1, hadd(a1));
  r = f32x4.replace_lane(r, 2, hadd(a2));
  r = f32x4.replace_lane(r, 3, hadd(a3));
  for (; i < n; i++) {
    const o = <usize>i << 2;
    r = f32x4.add(r, f32x4.mul(f32x4.splat(load<f32>(w + o)), f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(load<f32>(x + o)), 1, load<f32>(x + xs + o)), 2, load<f32>(x + 2 * xs + o)), 3, load<f32>(x + 3 * xs + o))));
  }
  return r;
}

/**
 * Rows [r0, r1) of out[T, outF] = x[T, inF] · Wᵀ + b. tables: the 16 f32 codebook values, then
 * the 256 f32 of the scale codes' map. scales (f32 per block) or, when 0, codes8 / nested /
 * nestedBlock / offset describe the double-quantized scales.
 */
export function linear_cb4(x: usize, codes: usize, scales: usize, codes8: usize, nested: usize, tables: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, B: i32, nestedBlock: i32, offset: f32, r0: i32, r1: i32, scratch: usize): void {
  const codebook = tables, map = tables + 64;
  const pairs = scratch + PAIRS, row = scratch + ROW;
  const xs = <usize>inF << 2;
  if (T == 1) {
    for (let v = 0; v < 256; v++) {
      store<f32>(pairs + (<usize>v << 3), load<f32>(codebook + (<usize>(v >> 4) << 2)));
      store<f32>(pairs + (<usize>v << 3), load<f32>(codebook + (<usize>(v & 15) << 2)), 4);
    }
  }
  const rowBytes = <usize>inF >> 1;
  const step = touchChunk(rowBytes);
  for (let c = r0; c < r1; c += step) {
    const e = min(c + step, r1);
    touch(codes + <usize>c * rowBytes, <usize>(e - c) * rowBytes, scratch + 16);
    for (let o = c; o < e; o++) {
      if (T == 1) {
        store<f32>(out + (<usize>o << 2), dotRowCb4(codes, x, o, inF, B, pairs, scales, codes8, nested, map, nestedBlock, offset));
        continue;
      }
      decodeRowCb4(codes, o, inF, B, codebook, row, scales, codes8, nested, map, nestedBlock, offset);
      let t = 0;
      for (; t + 4 <= T; t += 4) {
        const r = dot4RowsF32(row, x + <usize>t * xs, xs, inF);
        const po = out + ((<usize>t * outF + o) << 2), os = <usize>outF << 2;
        store<f32>(po, f32x4.extract_lane(r, 0));
        store<f32>(po + os, f32x4.extract_lane(r, 1));
        store<f32>(po + 2 * os, f32x4.extract_lane(r, 2));
        store<f32>(po + 3 * os, f32x4.extract_lane(r, 3));
      }
      for (; t < T; t++) store<f32>(out + ((<usize>t * outF + o) << 2), dotF32(row, x + <usize>t * xs, inF));
    }
  }
  addBias(bias, out, T, outF, r0, r1);
}
