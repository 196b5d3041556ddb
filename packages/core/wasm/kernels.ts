// lithe's WebAssembly SIMD kernels (AssemblyScript). Built by build.mjs into one module that every
// thread instantiates over the same shared memory. All arguments are byte addresses into that
// memory and element counts; threaded kernels take the range of output rows (or heads) to compute.
// The TypeScript kernels in src/backends/cpu/kernels are the reference these are tested against.

// ---------------------------------------------------------------------------------------------
// 16-bit floats
// ---------------------------------------------------------------------------------------------

// A sign-extended f16 in an i32, shifted into f32 position: the f32 whose value is the half's
// value times 2^-112 (exact for normals, subnormals and zero; inf/NaN become large finite values).
const HALF_MASK: i32 = 0x8fffe000;
// 2^112: rescales such f32s to the half's value.
const TWO_112: f32 = 5.192296858534828e33;

@inline function halfScaled4(h: v128): v128 {
  return v128.and(i32x4.shl(h, 13), i32x4.splat(HALF_MASK));
}

@inline function halfScaled(h: i32): f32 {
  return reinterpret<f32>((h << 13) & HALF_MASK);
}

@inline function halfToF32(p: usize): f32 {
  return halfScaled(<i32>load<i16>(p)) * TWO_112;
}

@inline function hadd(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

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

/** f16 row (as w·2^-112) · x pre-scaled by 2^56; the caller multiplies the result by 2^56. */
@inline function dotF16(w: usize, xs: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const pw = w + (<usize>i << 1), px = xs + (<usize>i << 2);
    // load16x4_s: four halves sign-extended to i32 lanes in one instruction.
    s0 = f32x4.add(s0, f32x4.mul(halfScaled4(v128.load16x4_s(pw)), v128.load(px)));
    s1 = f32x4.add(s1, f32x4.mul(halfScaled4(v128.load16x4_s(pw, 8)), v128.load(px, 16)));
    s2 = f32x4.add(s2, f32x4.mul(halfScaled4(v128.load16x4_s(pw, 16)), v128.load(px, 32)));
    s3 = f32x4.add(s3, f32x4.mul(halfScaled4(v128.load16x4_s(pw, 24)), v128.load(px, 48)));
  }
  let s = hadd(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3)));
  for (; i < n; i++) s += halfScaled(<i32>load<i16>(w + (<usize>i << 1))) * load<f32>(xs + (<usize>i << 2));
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

@inline function addBias(bias: usize, out: usize, T: i32, outF: i32, r0: i32, r1: i32): void {
  if (bias == 0) return;
  for (let t = 0; t < T; t++) {
    for (let o = r0; o < r1; o++) {
      const p = out + ((<usize>t * outF + o) << 2);
      store<f32>(p, load<f32>(p) + load<f32>(bias + (<usize>o << 2)));
    }
  }
}

export function linear_f32(x: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, _scratch: usize): void {
  const stride = <usize>inF << 2;
  if (T == 1) {
    for (let o = r0; o < r1; o++) store<f32>(out + (<usize>o << 2), dotF32(w + <usize>o * stride, x, inF));
  } else {
    // Blocks of 64 weight rows are reused for all T activation rows while they are in cache.
    for (let b = r0; b < r1; b += 64) {
      const e = min(b + 64, r1);
      matmulRowsF32(x, w + <usize>b * stride, out, T, inF, outF, b, e, _scratch, 1);
    }
  }
  addBias(bias, out, T, outF, r0, r1);
}

/** Converts f16 weight rows [o0, o1) to f32 (as w·2^-112) in scratch. */
function widenF16Rows(w: usize, inF: i32, o0: i32, o1: i32, dst: usize): void {
  const n = (o1 - o0) * inF;
  const src = w + ((<usize>o0 * inF) << 1);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const h = v128.load(src + (<usize>i << 1));
    v128.store(dst + (<usize>i << 2), halfScaled4(i32x4.extend_low_i16x8_s(h)));
    v128.store(dst + (<usize>i << 2), halfScaled4(i32x4.extend_high_i16x8_s(h)), 16);
  }
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), halfScaled(<i32>load<i16>(src + (<usize>i << 1))));
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
    for (let o = r0; o < r1; o++) store<f32>(out + (<usize>o << 2), dotF16(w + <usize>o * stride, xs, inF) * TWO_56);
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
    for (let o = r0; o < r1; o++) store<f32>(out + (<usize>o << 2), dotBF16(w + <usize>o * stride, x, inF));
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
// Block-quantized weights (llama.cpp layouts) against activations quantized to 8 bits per block
// ---------------------------------------------------------------------------------------------
//
// q8_0: 34-byte blocks of 32 values: f16 d, 32 × i8 q; x = q·d.
// q4_0: 18-byte blocks of 32 values: f16 d, 16 bytes; value j < 16 is the low nibble of byte j,
//       value j ≥ 16 the high nibble of byte j − 16; x = (nibble − 8)·d.
//
// The activation row is quantized per 32-value block (like llama.cpp's q8 dot products) and kept
// as 32 i16 in order (64 bytes per block): weights widen to i16 lanes as they load (load8x8_s for
// q8_0; load8x8_u, then mask or shift for the two nibbles of q4_0) and meet it in i32x4.dot_i16x8_s.
// After the nb blocks of a row: nb f32 scales, then nb i32 holding 8·Σq (the q4_0 offset).

/** Bytes of quantized activation per row of inF values. */
@inline function xqRowBytes(inF: i32): usize {
  return <usize>(inF >> 5) * 72;
}

export function xq_row_bytes(inF: i32): usize {
  return xqRowBytes(inF);
}

/** Quantizes T rows of inF f32 (inF % 32 == 0) into the layout above at xq. */
export function quantize_x(x: usize, xq: usize, T: i32, inF: i32): void {
  const nb = inF >> 5;
  for (let t = 0; t < T; t++) {
    const row = x + ((<usize>t * inF) << 2);
    const q = xq + <usize>t * xqRowBytes(inF);
    const scales = q + (<usize>nb << 6);
    const sums = scales + (<usize>nb << 2);
    for (let b = 0; b < nb; b++) {
      const src = row + (<usize>b << 7);
      let m = f32x4.splat(0);
      for (let k = 0; k < 8; k++) m = f32x4.max(m, f32x4.abs(v128.load(src + (<usize>k << 4))));
      const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
      const d: f32 = amax / 127;
      const id: f32 = amax > 0 ? 127 / amax : 0;
      const dst = q + (<usize>b << 6);
      let sum = 0;
      for (let j = 0; j < 32; j++) {
        const v = <i32>nearest<f32>(load<f32>(src + (<usize>j << 2)) * id);
        sum += v;
        store<i16>(dst + (<usize>j << 1), <i16>v);
      }
      store<f32>(scales + (<usize>b << 2), d);
      store<i32>(sums + (<usize>b << 2), sum << 3);
    }
  }
}

@inline function q8BlockDot(wb: usize, xb: usize): v128 {
  let d = i32x4.dot_i16x8_s(v128.load8x8_s(wb, 2), v128.load(xb));
  d = i32x4.add(d, i32x4.dot_i16x8_s(v128.load8x8_s(wb, 10), v128.load(xb, 16)));
  d = i32x4.add(d, i32x4.dot_i16x8_s(v128.load8x8_s(wb, 18), v128.load(xb, 32)));
  d = i32x4.add(d, i32x4.dot_i16x8_s(v128.load8x8_s(wb, 26), v128.load(xb, 48)));
  return d;
}

@inline function q4BlockDot(wb: usize, xb: usize): v128 {
  // Bytes 0..7 and 8..15 widened to i16: low nibbles are values 0..15, high nibbles 16..31.
  const b0 = v128.load8x8_u(wb, 2);
  const b1 = v128.load8x8_u(wb, 10);
  const m = i16x8.splat(0x0f);
  let d = i32x4.dot_i16x8_s(v128.and(b0, m), v128.load(xb));
  d = i32x4.add(d, i32x4.dot_i16x8_s(v128.and(b1, m), v128.load(xb, 16)));
  d = i32x4.add(d, i32x4.dot_i16x8_s(i16x8.shr_u(b0, 4), v128.load(xb, 32)));
  d = i32x4.add(d, i32x4.dot_i16x8_s(i16x8.shr_u(b1, 4), v128.load(xb, 48)));
  return d;
}

/** [Σa, Σb, Σc, Σd] of four i32x4 vectors. */
@inline function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(i32x4.shuffle(a, b, 0, 4, 2, 6), i32x4.shuffle(a, b, 1, 5, 3, 7));
  const cd = i32x4.add(i32x4.shuffle(c, d, 0, 4, 2, 6), i32x4.shuffle(c, d, 1, 5, 3, 7));
  return i32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

@inline function hsumI32(a: v128): i32 {
  return i32x4.extract_lane(a, 0) + i32x4.extract_lane(a, 1) + i32x4.extract_lane(a, 2) + i32x4.extract_lane(a, 3);
}

/** The f16 scales of four consecutive blocks (stride bb bytes) as f32x4. */
@inline function scales4(w: usize, bb: usize): v128 {
  let h = v128.load16_lane(w, i32x4.splat(0), 0);
  h = v128.load16_lane(w + bb, h, 1);
  h = v128.load16_lane(w + 2 * bb, h, 2);
  h = v128.load16_lane(w + 3 * bb, h, 3);
  return f32x4.mul(halfScaled4(i32x4.extend_low_i16x8_s(h)), f32x4.splat(TWO_112));
}

function dotQ8(w: usize, xq: usize, nb: i32): f32 {
  const scales = xq + (<usize>nb << 6);
  let acc = f32x4.splat(0);
  let b = 0;
  for (; b + 4 <= nb; b += 4) {
    const wb = w + <usize>b * 34, xb = xq + (<usize>b << 6);
    const d = hsum4(q8BlockDot(wb, xb), q8BlockDot(wb + 34, xb + 64), q8BlockDot(wb + 68, xb + 128), q8BlockDot(wb + 102, xb + 192));
    const s = f32x4.mul(scales4(wb, 34), v128.load(scales + (<usize>b << 2)));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(d), s));
  }
  let sum = hadd(acc);
  for (; b < nb; b++) {
    const wb = w + <usize>b * 34;
    sum += <f32>hsumI32(q8BlockDot(wb, xq + (<usize>b << 6))) * halfToF32(wb) * load<f32>(scales + (<usize>b << 2));
  }
  return sum;
}

function dotQ4(w: usize, xq: usize, nb: i32): f32 {
  const scales = xq + (<usize>nb << 6);
  const sums = scales + (<usize>nb << 2);
  let acc = f32x4.splat(0);
  let b = 0;
  for (; b + 4 <= nb; b += 4) {
    const wb = w + <usize>b * 18, xb = xq + (<usize>b << 6);
    let d = hsum4(q4BlockDot(wb, xb), q4BlockDot(wb + 18, xb + 64), q4BlockDot(wb + 36, xb + 128), q4BlockDot(wb + 54, xb + 192));
    d = i32x4.sub(d, v128.load(sums + (<usize>b << 2)));
    const s = f32x4.mul(scales4(wb, 18), v128.load(scales + (<usize>b << 2)));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(d), s));
  }
  let sum = hadd(acc);
  for (; b < nb; b++) {
    const wb = w + <usize>b * 18;
    const d = hsumI32(q4BlockDot(wb, xq + (<usize>b << 6))) - load<i32>(sums + (<usize>b << 2));
    sum += <f32>d * halfToF32(wb) * load<f32>(scales + (<usize>b << 2));
  }
  return sum;
}

/** xq from quantize_x. Weight rows are consecutive: inF / 32 blocks of 34 bytes each. */
export function linear_q8_0(xq: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, _scratch: usize): void {
  const nb = inF >> 5;
  const stride = <usize>nb * 34;
  const xs = xqRowBytes(inF);
  for (let o = r0; o < r1; o++) {
    for (let t = 0; t < T; t++) store<f32>(out + ((<usize>t * outF + o) << 2), dotQ8(w + <usize>o * stride, xq + <usize>t * xs, nb));
  }
  addBias(bias, out, T, outF, r0, r1);
}

export function linear_q4_0(xq: usize, w: usize, bias: usize, out: usize, T: i32, inF: i32, outF: i32, r0: i32, r1: i32, _scratch: usize): void {
  const nb = inF >> 5;
  const stride = <usize>nb * 18;
  const xs = xqRowBytes(inF);
  for (let o = r0; o < r1; o++) {
    for (let t = 0; t < T; t++) store<f32>(out + ((<usize>t * outF + o) << 2), dotQ4(w + <usize>o * stride, xq + <usize>t * xs, nb));
  }
  addBias(bias, out, T, outF, r0, r1);
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
