// Row-wise ops of the decode step that are not linears: rotary embedding, softmax, argmax and the
// embedding lookup from block-quantized tables. Each touches one row per token (or the logits once
// per step), so they run on the calling thread. The reference is the TypeScript CPU backend.

import { halfAt } from './common';

// ---------------------------------------------------------------------------------------------
// Rotary embedding, HF's rotate_half layout: element i of a head pairs with i + half
// ---------------------------------------------------------------------------------------------

/**
 * Rotates x [T, nHeads · 2·half] in place; positions: T i32, invFreq: half f32, cs: scratch for
 * 2·half f32. Each angle is position · inv_freq in f32, as the reference (and PyTorch) computes it.
 */
export function rope(x: usize, T: i32, nHeads: i32, half: i32, positions: usize, invFreq: usize, cs: usize): void {
  const width = <usize>nHeads * half * 2;
  const sn = cs + (<usize>half << 2);
  for (let t = 0; t < T; t++) {
    const pos = <f32>load<i32>(positions + (<usize>t << 2));
    for (let i = 0; i < half; i++) {
      const angle = <f64>(pos * load<f32>(invFreq + (<usize>i << 2)));
      store<f32>(cs + (<usize>i << 2), <f32>Math.cos(angle));
      store<f32>(sn + (<usize>i << 2), <f32>Math.sin(angle));
    }
    for (let h = 0; h < nHeads; h++) {
      const a = x + ((<usize>t * width + <usize>h * half * 2) << 2);
      const b = a + (<usize>half << 2);
      let i = 0;
      for (; i + 4 <= half; i += 4) {
        const o = <usize>i << 2;
        const va = v128.load(a + o), vb = v128.load(b + o), c = v128.load(cs + o), s = v128.load(sn + o);
        v128.store(a + o, f32x4.sub(f32x4.mul(va, c), f32x4.mul(vb, s)));
        v128.store(b + o, f32x4.add(f32x4.mul(vb, c), f32x4.mul(va, s)));
      }
      for (; i < half; i++) {
        const o = <usize>i << 2;
        const va = load<f32>(a + o), vb = load<f32>(b + o), c = load<f32>(cs + o), s = load<f32>(sn + o);
        store<f32>(a + o, va * c - vb * s);
        store<f32>(b + o, vb * c + va * s);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Softmax and argmax over rows of n
// ---------------------------------------------------------------------------------------------

/** The largest of n f32 at p (NaNs skipped, as `>` comparisons skip them; NaN if p[0] is one). */
@inline function rowMax(p: usize, n: i32): f32 {
  let m = f32x4.splat(load<f32>(p));
  let i = 0;
  for (; i + 4 <= n; i += 4) m = f32x4.pmax(m, v128.load(p + (<usize>i << 2)));
  let best = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
  for (; i < n; i++) {
    const v = load<f32>(p + (<usize>i << 2));
    if (v > best) best = v;
  }
  return best;
}

export function softmax(x: usize, out: usize, rows: i32, n: i32): void {
  for (let r = 0; r < rows; r++) {
    const xr = x + ((<usize>r * n) << 2), or = out + ((<usize>r * n) << 2);
    const m = rowMax(xr, n);
    let sum: f64 = 0;
    for (let i = 0; i < n; i++) {
      const e = Mathf.exp(load<f32>(xr + (<usize>i << 2)) - m);
      store<f32>(or + (<usize>i << 2), e);
      sum += e;
    }
    const inv = f32x4.splat(<f32>(1 / sum));
    let i = 0;
    for (; i + 4 <= n; i += 4) v128.store(or + (<usize>i << 2), f32x4.mul(v128.load(or + (<usize>i << 2)), inv));
    for (; i < n; i++) store<f32>(or + (<usize>i << 2), load<f32>(or + (<usize>i << 2)) * f32x4.extract_lane(inv, 0));
  }
}

/** Whether any of n f32 at p is a NaN. */
@inline function rowHasNaN(p: usize, n: i32): bool {
  let nan = i32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(p + (<usize>i << 2));
    nan = v128.or(nan, f32x4.ne(v, v));
  }
  let any = v128.any_true(nan);
  for (; i < n; i++) {
    const v = load<f32>(p + (<usize>i << 2));
    any = any || v != v;
  }
  return any;
}

/** out[r] = the index of the largest value of row r (the first one on ties); −1 for a row holding a NaN. */
export function argmax(x: usize, out: usize, rows: i32, n: i32): void {
  for (let r = 0; r < rows; r++) {
    const xr = x + ((<usize>r * n) << 2);
    if (rowHasNaN(xr, n)) {
      store<i32>(out + (<usize>r << 2), -1);
      continue;
    }
    const m = rowMax(xr, n);
    let at = 0;
    while (at < n && load<f32>(xr + (<usize>at << 2)) != m) at++;
    store<i32>(out + (<usize>r << 2), at < n ? at : 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Embedding rows from block-quantized tables, decoded exactly as ggml's dequantize_row_*
// ---------------------------------------------------------------------------------------------

const Q8_0: i32 = 0; // repacked rows (kernels.ts): nb f16 scales, then nb × 32 quants
const Q4_0: i32 = 1; // repacked rows: nb f16 scales, then nb × 16 nibble bytes
const Q4_1: i32 = 2; // llama.cpp's blocks of 20 bytes
const Q4_K: i32 = 3; // llama.cpp's super-blocks of 144 bytes
const Q6_K: i32 = 4; // llama.cpp's super-blocks of 210 bytes

@inline function rowBytes(kind: i32, dim: i32): usize {
  const nb = <usize>(dim >> 5);
  if (kind == Q8_0) return nb * 34;
  if (kind == Q4_0) return nb * 18;
  if (kind == Q4_1) return nb * 20;
  return (nb >> 3) * (kind == Q4_K ? 144 : 210);
}

/** The 6-bit scale (or, `min`, the min) of sub-block j of a q4_k super-block's scales at s. */
@inline function q4kScale(s: usize, j: i32, min: bool): f32 {
  const o: usize = min ? 4 : 0;
  if (j < 4) return <f32>(load<u8>(s + <usize>j + o) & 63);
  const hiBits = (<i32>load<u8>(s + <usize>j - 4 + o) >> 6) << 4;
  const lo = <i32>load<u8>(s + <usize>j + 4);
  return <f32>((min ? lo >> 4 : lo & 15) | hiBits);
}

function decodeRow(kind: i32, row: usize, dim: i32, y: usize): void {
  const nb = dim >> 5;
  if (kind == Q8_0 || kind == Q4_0) {
    const q = row + (<usize>nb << 1);
    for (let b = 0; b < nb; b++) {
      const d = halfAt(row + (<usize>b << 1));
      const yb = y + (<usize>b << 7);
      for (let j = 0; j < 32; j++) {
        const v = kind == Q8_0 ? <i32>load<i8>(q + <usize>b * 32 + j) : ((<i32>load<u8>(q + <usize>b * 16 + (j & 15)) >> ((j >> 4) << 2)) & 15) - 8;
        store<f32>(yb + (<usize>j << 2), <f32>v * d);
      }
    }
  } else if (kind == Q4_1) {
    for (let b = 0; b < nb; b++) {
      const p = row + <usize>b * 20;
      const d = halfAt(p), m = halfAt(p + 2);
      for (let j = 0; j < 32; j++) store<f32>(y + (<usize>(b * 32 + j) << 2), <f32>((<i32>load<u8>(p + 4 + (j & 15)) >> ((j >> 4) << 2)) & 15) * d + m);
    }
  } else if (kind == Q4_K) {
    for (let s = 0; s < nb >> 3; s++) {
      const p = row + <usize>s * 144;
      const d = halfAt(p), dmin = halfAt(p + 2);
      for (let j = 0; j < 8; j++) {
        const dj = d * q4kScale(p + 4, j, false), mj = dmin * q4kScale(p + 4, j, true);
        const q = p + 16 + (<usize>(j >> 1) << 5);
        const shift = (j & 1) << 2;
        const yj = y + (<usize>(s * 256 + j * 32) << 2);
        for (let l = 0; l < 32; l++) store<f32>(yj + (<usize>l << 2), dj * <f32>((<i32>load<u8>(q + l) >> shift) & 15) - mj);
      }
    }
  } else {
    for (let s = 0; s < nb >> 3; s++) {
      const p = row + <usize>s * 210;
      const d = halfAt(p + 208);
      for (let n = 0; n < 2; n++) {
        const ql = p + <usize>n * 64, qh = p + 128 + <usize>n * 32, sc = p + 192 + <usize>n * 8;
        const yn = y + (<usize>(s * 256 + n * 128) << 2);
        for (let l = 0; l < 32; l++) {
          const is = <usize>(l >> 4);
          const hb = <i32>load<u8>(qh + l);
          const lo = <i32>load<u8>(ql + l), lo2 = <i32>load<u8>(ql + l + 32);
          store<f32>(yn + (<usize>l << 2), d * <f32>load<i8>(sc + is) * <f32>(((lo & 15) | ((hb & 3) << 4)) - 32));
          store<f32>(yn + (<usize>(l + 32) << 2), d * <f32>load<i8>(sc + is + 2) * <f32>(((lo2 & 15) | (((hb >> 2) & 3) << 4)) - 32));
          store<f32>(yn + (<usize>(l + 64) << 2), d * <f32>load<i8>(sc + is + 4) * <f32>(((lo >> 4) | (((hb >> 4) & 3) << 4)) - 32));
          store<f32>(yn + (<usize>(l + 96) << 2), d * <f32>load<i8>(sc + is + 6) * <f32>(((lo2 >> 4) | (((hb >> 6) & 3) << 4)) - 32));
        }
      }
    }
  }
}

/** out[t] = table[ids[t]] for n ids (i32 at ids, checked by the caller) of a `kind` table of rows of dim. */
export function embed_rows(kind: i32, table: usize, ids: usize, n: i32, dim: i32, out: usize): void {
  const rb = rowBytes(kind, dim);
  for (let t = 0; t < n; t++) decodeRow(kind, table + <usize>load<i32>(ids + (<usize>t << 2)) * rb, dim, out + ((<usize>t * dim) << 2));
}
