// The linear kernel for core's grouped int weights (quant/grouped-int.ts) at 4 bits: row o of W
// is inF/2 bytes of codes (element 2b in the low nibble of byte b, 2b + 1 in the high one), with
// an f16 scale and a u8 zero point per group of G columns; W[o, j] = scale · (code − zero).
//
// prepare_x_grouped lays each activation row out once per call: gathered through the act-order
// permutation (when there is one), reordered per 32 values into [16 even, 16 odd] so that the low
// and the high nibbles of 16 code bytes each meet 16 consecutive floats, then the sum of x over
// each group. linear_grouped_q4 then takes 32 weights per 16-byte load, widens the nibbles to f32
// and accumulates x·code in four f32x4 per group; a group adds scale · (Σ x·code − zero · Σ x).
// Needs G and inF to be multiples of 32 (the TypeScript kernel handles the rest).

import { hadd, halfAt } from './common';

/** Bytes of one prepared activation row. */
export function grouped_x_row_bytes(inF: i32, G: i32): usize {
  return <usize>(inF + inF / G) << 2;
}

export function prepare_x_grouped(x: usize, perm: usize, xp: usize, T: i32, inF: i32, G: i32): void {
  const groups = inF / G;
  const rowBytes = grouped_x_row_bytes(inF, G);
  for (let t = 0; t < T; t++) {
    const src = x + ((<usize>t * inF) << 2);
    const dst = xp + <usize>t * rowBytes;
    for (let j = 0; j < inF; j++) {
      const from = perm ? <usize>load<i32>(perm + (<usize>j << 2)) : <usize>j;
      const k = j & 31;
      const pos = (j & ~31) + ((k & 1) ? 16 + (k >> 1) : k >> 1);
      store<f32>(dst + (<usize>pos << 2), load<f32>(src + (from << 2)));
    }
    for (let g = 0; g < groups; g++) {
      let s = f32x4.splat(0);
      const p = dst + ((<usize>g * G) << 2);
      for (let j = 0; j < G; j += 4) s = f32x4.add(s, v128.load(p + (<usize>j << 2)));
      store<f32>(dst + ((<usize>(inF + g)) << 2), hadd(s));
    }
  }
}

/** Σ of 16 code bytes' low (or high) nibbles, each times its float among the 16 at xs. */
@inline function nibbles16(n: v128, xs: usize, acc: v128): v128 {
  const a = i16x8.extend_low_i8x16_u(n);
  const b = i16x8.extend_high_i8x16_u(n);
  acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(a)), v128.load(xs)));
  acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(a)), v128.load(xs, 16)));
  acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(b)), v128.load(xs, 32)));
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(b)), v128.load(xs, 48)));
}

export function linear_grouped_q4(xp: usize, codes: usize, scales: usize, zeros: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, G: i32, r0: i32, r1: i32, _scratch: usize): void {
  const groups = inF / G;
  const rowBytes = grouped_x_row_bytes(inF, G);
  const low = i8x16.splat(15);
  for (let o = r0; o < r1; o++) {
    const cr = codes + ((<usize>o * inF) >> 1);
    const sr = scales + ((<usize>o * groups) << 1);
    const zr = zeros + <usize>o * groups;
    for (let t = 0; t < T; t++) {
      const xr = xp + <usize>t * rowBytes;
      let acc: f32 = 0;
      for (let g = 0; g < groups; g++) {
        let lo = f32x4.splat(0);
        let hi = f32x4.splat(0);
        for (let j = g * G, end = j + G; j < end; j += 32) {
          const v = v128.load(cr + (<usize>j >> 1));
          const xs = xr + (<usize>j << 2);
          lo = nibbles16(v128.and(v, low), xs, lo);
          hi = nibbles16(i8x16.shr_u(v, 4), xs + 64, hi);
        }
        const sum = hadd(f32x4.add(lo, hi));
        acc += halfAt(sr + (<usize>g << 1)) * (sum - <f32>load<u8>(zr + g) * load<f32>(xr + (<usize>(inF + g) << 2)));
      }
      const b: f32 = bias ? load<f32>(bias + (<usize>o << 2)) : 0;
      store<f32>(out + ((<usize>t * outF + o) << 2), acc + b);
    }
  }
}
