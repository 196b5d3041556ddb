// Tiled online-softmax attention over a dense f32 or f16 KV cache (AssemblyScript, SIMD128).
//
// One kernel serves prefill and decode. Its work items are tiles: (KV head g, block of query rows,
// chunk of keys). A tile holds every query vector of its rows that reads KV head g (rows × the
// heads of g's group), so each block of BK keys and values is loaded (and, for f16, decoded) once
// for all of them. Keys run in blocks inside the tile's chunk with FlashAttention-2's online
// softmax: a running max m and sum l per query vector, the accumulator rescaled by exp(m_old − m)
// when the max grows. Keys past the tile's last causal position or before its window start are
// never visited (causal blocks skipped); keys masked for only some rows of the tile are set to −∞.
//
// Prefill has enough tiles in its query blocks: one chunk, and the tile writes its output rows.
// Decode (one row) has only nKVHeads tiles, so the key range is split into chunks ("flash
// decoding"): each tile writes its (m, l, accumulator) per query vector, and flash_combine merges
// the chunks. Built twice (wasm/build.mjs): SIMD128, and relaxed SIMD where the multiply-adds of the
// two hot loops are f32x4.relaxed_madd. The module has no static data (the backend instantiates it in every worker over the
// same memory), so exp is a polynomial here rather than a table.

/** Keys per block. */
const BK: i32 = 32;

/** exp(x) for four lanes: Cephes' expf (range reduction by ln 2, degree-6 polynomial), ~1 ulp; 0 below −87.3 (−∞ included). */
@inline function expv(x: v128): v128 {
  const lo = f32x4.splat(-87.33654);
  const xc = f32x4.min(f32x4.max(x, lo), f32x4.splat(88.37626));
  const n = f32x4.nearest(f32x4.mul(xc, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(xc, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(p, r), r), r), f32x4.splat(1));
  const pow2 = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return v128.and(f32x4.mul(p, pow2), f32x4.gt(x, lo));
}

@inline function exp1(x: f32): f32 {
  return f32x4.extract_lane(expv(f32x4.splat(x)), 0);
}

/**
 * Four f16 (sign-extended into i32 lanes: v128.load16x4_s) as f32, exactly for finite halves: the
 * shift puts the sign in bit 31 and exponent and mantissa in place for an f32 of value h·2^-112,
 * which the multiply rescales (subnormal halves come out right too, through a subnormal f32).
 * Infinities and NaN would read as large finite values; a KV cache holds neither.
 */
@inline function half4(h: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(h, 13), i32x4.splat(0x8fffe000)), f32x4.splat(5.192296858534828e33));
}

/** c + a·b: one fused (or not: the runtime's choice) multiply-add in the relaxed-SIMD build. */
@inline function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

/** [Σa, Σb, Σc, Σd] of four vectors. */
@inline function sum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

/** The bytes of scratch one thread needs for tiles of `mq` query vectors of `headDim`. */
export function flash_scratch_bytes(mq: i32, headDim: i32): i32 {
  return 2 * mq * headDim * 4 + mq * BK * 4 + mq * 8 + 2 * BK * headDim * 4 + 64;
}

/**
 * Scores of query vectors [0, M) (qs, scaled, rows of D) against keys [0, nb) (row jj at kp + jj·ks;
 * rows past nb repeat the last one) into sc (rows of BK): two queries × four keys per pass.
 */
@inline function scores(qs: usize, kp: usize, ks: usize, sc: usize, M: i32, nb: i32, D: i32): void {
  const dBytes = <usize>D << 2;
  const last = <usize>(nb - 1);
  for (let i = 0; i < M; i += 2) {
    const q0 = qs + <usize>i * dBytes;
    const two = i + 1 < M;
    const q1 = two ? q0 + dBytes : q0;
    for (let jj = 0; jj < nb; jj += 4) {
      const k0 = kp + <usize>jj * ks;
      const k1 = kp + min(<usize>(jj + 1), last) * ks;
      const k2 = kp + min(<usize>(jj + 2), last) * ks;
      const k3 = kp + min(<usize>(jj + 3), last) * ks;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
      for (let d: usize = 0; d < dBytes; d += 16) {
        const x = v128.load(q0 + d), y = v128.load(q1 + d);
        const w0 = v128.load(k0 + d), w1 = v128.load(k1 + d), w2 = v128.load(k2 + d), w3 = v128.load(k3 + d);
        a0 = madd(x, w0, a0);
        a1 = madd(x, w1, a1);
        a2 = madd(x, w2, a2);
        a3 = madd(x, w3, a3);
        b0 = madd(y, w0, b0);
        b1 = madd(y, w1, b1);
        b2 = madd(y, w2, b2);
        b3 = madd(y, w3, b3);
      }
      const row = sc + ((<usize>(i * BK + jj)) << 2);
      v128.store(row, sum4(a0, a1, a2, a3));
      if (two) v128.store(row + (<usize>BK << 2), sum4(b0, b1, b2, b3));
    }
  }
}

/** acc[i] += Σ_jj p[i][jj] · V[jj] for query vectors [0, M), four at a time, four lanes of D per pass. */
@inline function accumulate(sc: usize, vp: usize, vs: usize, acc: usize, M: i32, nb: i32, D: i32): void {
  const dBytes = <usize>D << 2;
  const pRow = <usize>BK << 2;
  for (let i = 0; i < M; i += 4) {
    const n = min(4, M - i);
    const p0 = sc + <usize>i * pRow;
    const p1 = n > 1 ? p0 + pRow : p0;
    const p2 = n > 2 ? p0 + 2 * pRow : p0;
    const p3 = n > 3 ? p0 + 3 * pRow : p0;
    const r0 = acc + <usize>i * dBytes;
    const r1 = n > 1 ? r0 + dBytes : r0;
    const r2 = n > 2 ? r0 + 2 * dBytes : r0;
    const r3 = n > 3 ? r0 + 3 * dBytes : r0;
    for (let d: usize = 0; d < dBytes; d += 16) {
      let a0 = v128.load(r0 + d), a1 = v128.load(r1 + d), a2 = v128.load(r2 + d), a3 = v128.load(r3 + d);
      for (let jj = 0; jj < nb; jj++) {
        const x = v128.load(vp + <usize>jj * vs + d);
        const o = <usize>jj << 2;
        a0 = madd(v128.load32_splat(p0 + o), x, a0);
        a1 = madd(v128.load32_splat(p1 + o), x, a1);
        a2 = madd(v128.load32_splat(p2 + o), x, a2);
        a3 = madd(v128.load32_splat(p3 + o), x, a3);
      }
      // Duplicated rows (n < 4) alias r0: store them first so r0's own sum lands last.
      v128.store(r3 + d, a3);
      v128.store(r2 + d, a2);
      v128.store(r1 + d, a1);
      v128.store(r0 + d, a0);
    }
  }
}

/** nb rows of f16 (row jj at src + jj·stride bytes) decoded into dst, rows of D f32. */
@inline function decodeRows(src: usize, stride: usize, dst: usize, nb: i32, D: i32): void {
  for (let jj = 0; jj < nb; jj++) {
    const s = src + <usize>jj * stride;
    const o = dst + ((<usize>(jj * D)) << 2);
    for (let d = 0; d < D; d += 4) v128.store(o + (<usize>d << 2), half4(v128.load16x4_s(s + (<usize>d << 1))));
  }
}

/** One f16 (bits in the low half of h) as f32. */
@inline function half1(h: i32): f32 {
  return f32x4.extract_lane(half4(i32x4.splat(<i32>(<i16>h))), 0);
}

/**
 * nb rows of block-quantized codes (row jj at src + jj·stride bytes, f16 parameters at
 * par + jj·parStride: scale, then zero unless `sym`) dequantized into dst, rows of D f32:
 * x = c·scale − zero·scale (asymmetric; the zero itself when scale is 0), c·scale (symmetric).
 * 8 bits: a byte a code (u8, or i8 when `sym`); 4 bits: two a byte, low nibble first.
 */
@inline function dequantRows(src: usize, stride: usize, par: usize, parStride: usize, dst: usize, nb: i32, D: i32, bits: i32, sym: bool): void {
  for (let jj = 0; jj < nb; jj++) {
    const s = src + <usize>jj * stride;
    const pr = par + <usize>jj * parStride;
    const a = half1(load<u16>(pr));
    let b: f32 = 0;
    if (!sym) {
      const z = half1(load<u16>(pr, 2));
      b = a == 0 ? z : -z * a;
    }
    const av = f32x4.splat(a);
    const bv = f32x4.splat(b);
    const o = dst + ((<usize>(jj * D)) << 2);
    if (bits == 8) {
      for (let d = 0; d < D; d += 4) {
        const w = v128.load32_zero(s + <usize>d);
        const c = sym ? i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(w)) : i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(w));
        v128.store(o + (<usize>d << 2), f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(c), av), bv));
      }
    } else {
      for (let d = 0; d < D; d += 4) {
        // Two bytes, four nibbles: lanes [b0 lo, b0 hi, b1 lo, b1 hi].
        const w = <i32>load<u16>(s + (<usize>d >> 1));
        const x0 = sym ? (w << 28) >> 28 : w & 15;
        const x1 = sym ? (w << 24) >> 28 : (w >> 4) & 15;
        const x2 = sym ? (w << 20) >> 28 : (w >> 8) & 15;
        const x3 = sym ? (w << 16) >> 28 : (w >> 12) & 15;
        const c = i32x4.replace_lane(i32x4.replace_lane(i32x4.replace_lane(i32x4.splat(x0), 1, x1), 2, x2), 3, x3);
        v128.store(o + (<usize>d << 2), f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(c), av), bv));
      }
    }
  }
}

/**
 * Tiles [u0, u1). q [rows, nHeads·D] f32; k, v [capacity, nKVHeads·D] in f32, or f16 when `half`
 * (a constant: each export is its own specialisation). Row t attends to positions [lo(t), hi(t)]:
 * hi = startPos + t − noDiag, lo = max(0, hi' − window + 1) with hi' = startPos + t (0 without a
 * window); a row with no position gets zeros. Tile u: chunk u % nChunks, query block
 * (u / nChunks) % nQB of qBlock rows, KV head u / (nChunks · nQB). nChunks 1: normalized rows into
 * out; else (m, l, 0, 0, acc[D]) per query vector and chunk into parts (flash_combine's input).
 * `bits` 8 or 4 (constant): k, v are codes and kq, vq their f16 parameters (dequantRows), each block
 * dequantized into the tile's scratch as f16 blocks are decoded.
 */
@inline function flashTiles(q: usize, k: usize, v: usize, out: usize, parts: usize, rows: i32, nHeads: i32, nKVHeads: i32, D: i32, scale: f32, startPos: i32, window: i32, noDiag: i32, qBlock: i32, chunkLen: i32, nChunks: i32, u0: i32, u1: i32, scratch: usize, half: bool, bits: i32 = 0, sym: bool = false, kq: usize = 0, vq: usize = 0): void {
  const group = nHeads / nKVHeads;
  const kvWidth = nKVHeads * D;
  const nQB = (rows + qBlock - 1) / qBlock;
  const mq = qBlock * group;
  const dBytes = <usize>D << 2;
  const eb: usize = half ? 1 : 2; // log2 of the bytes of one cached element
  const rowStride = <usize>kvWidth << eb;
  const base = (scratch + 15) & ~(<usize>15);
  const qs = base;
  const acc = qs + <usize>mq * dBytes;
  const sc = acc + <usize>mq * dBytes;
  const ml = sc + ((<usize>(mq * BK)) << 2);
  const kf = ml + ((<usize>mq) << 3);
  const vf = kf + <usize>BK * dBytes;
  const sv = f32x4.splat(scale);
  const minusInf = f32x4.splat(-Infinity);
  for (let u = u0; u < u1; u++) {
    const c = u % nChunks;
    const rest = u / nChunks;
    const qb = rest % nQB;
    const g = rest / nQB;
    const t0 = qb * qBlock;
    const t1 = min(rows, t0 + qBlock);
    const M = (t1 - t0) * group;
    for (let i = 0; i < M; i++) {
      const t = t0 + i / group;
      const src = q + ((<usize>(t * nHeads + g * group + (i % group)) * D) << 2);
      const dst = qs + <usize>i * dBytes;
      const a = acc + <usize>i * dBytes;
      for (let d: usize = 0; d < dBytes; d += 16) {
        v128.store(dst + d, f32x4.mul(v128.load(src + d), sv));
        v128.store(a + d, f32x4.splat(0));
      }
      store<f32>(ml + (<usize>i << 3), -Infinity);
      store<f32>(ml + (<usize>i << 3), 0, 4);
    }
    const loT = window > 0 ? max(0, startPos + t0 - window + 1) : 0;
    const hiT = startPos + t1 - 1 - noDiag;
    const js = loT + c * chunkLen;
    const je = min(hiT, js + chunkLen - 1);
    const kvo = g * D;
    for (let j0 = js; j0 <= je; j0 += BK) {
      const nb = min(BK, je - j0 + 1);
      let kp = k + ((<usize>(j0 * kvWidth + kvo)) << eb);
      let vp = v + ((<usize>(j0 * kvWidth + kvo)) << eb);
      let stride = rowStride;
      if (bits != 0) {
        const codeRow = <usize>((kvWidth * bits) >> 3);
        const co = <usize>j0 * codeRow + <usize>((kvo * bits) >> 3);
        const pp: i32 = sym ? 1 : 2;
        const po = (<usize>(j0 * nKVHeads + g) * <usize>pp) << 1;
        const ps = <usize>(nKVHeads * pp) << 1;
        dequantRows(k + co, codeRow, kq + po, ps, kf, nb, D, bits, sym);
        dequantRows(v + co, codeRow, vq + po, ps, vf, nb, D, bits, sym);
        kp = kf;
        vp = vf;
        stride = dBytes;
      } else if (half) {
        decodeRows(kp, rowStride, kf, nb, D);
        decodeRows(vp, rowStride, vf, nb, D);
        kp = kf;
        vp = vf;
        stride = dBytes;
      }
      scores(qs, kp, stride, sc, M, nb, D);
      const nb4 = (nb + 3) & ~3;
      for (let i = 0; i < M; i++) {
        const t = t0 + i / group;
        const lo = window > 0 ? max(0, startPos + t - window + 1) : 0;
        const hi = startPos + t - noDiag;
        const a = max(lo, j0) - j0;
        const b = min(hi, j0 + nb - 1) - j0;
        const row = sc + ((<usize>(i * BK)) << 2);
        if (a > b) {
          // No key of this block for this row: zero weights, its state unchanged.
          for (let jj = 0; jj < nb4; jj += 4) v128.store(row + (<usize>jj << 2), f32x4.splat(0));
          continue;
        }
        for (let jj = 0; jj < a; jj++) store<f32>(row + (<usize>jj << 2), -Infinity);
        for (let jj = b + 1; jj < nb4; jj++) store<f32>(row + (<usize>jj << 2), -Infinity);
        let mx = minusInf;
        for (let jj = 0; jj < nb4; jj += 4) mx = f32x4.max(mx, v128.load(row + (<usize>jj << 2)));
        const mb = max(max(f32x4.extract_lane(mx, 0), f32x4.extract_lane(mx, 1)), max(f32x4.extract_lane(mx, 2), f32x4.extract_lane(mx, 3)));
        const mOld = load<f32>(ml + (<usize>i << 3));
        const mNew = max(mOld, mb);
        const mv = f32x4.splat(mNew);
        let sum = f32x4.splat(0);
        for (let jj = 0; jj < nb4; jj += 4) {
          const p = row + (<usize>jj << 2);
          const e = expv(f32x4.sub(v128.load(p), mv));
          v128.store(p, e);
          sum = f32x4.add(sum, e);
        }
        const s = f32x4.extract_lane(sum, 0) + f32x4.extract_lane(sum, 1) + (f32x4.extract_lane(sum, 2) + f32x4.extract_lane(sum, 3));
        if (mNew > mOld) {
          const alpha = exp1(mOld - mNew);
          store<f32>(ml + (<usize>i << 3), mNew);
          store<f32>(ml + (<usize>i << 3), load<f32>(ml + (<usize>i << 3), 4) * alpha + s, 4);
          const av = f32x4.splat(alpha);
          const ar = acc + <usize>i * dBytes;
          for (let d: usize = 0; d < dBytes; d += 16) v128.store(ar + d, f32x4.mul(v128.load(ar + d), av));
        } else {
          store<f32>(ml + (<usize>i << 3), load<f32>(ml + (<usize>i << 3), 4) + s, 4);
        }
      }
      accumulate(sc, vp, stride, acc, M, nb, D);
    }
    for (let i = 0; i < M; i++) {
      const t = t0 + i / group;
      const r = t * nHeads + g * group + (i % group);
      const a = acc + <usize>i * dBytes;
      const m = load<f32>(ml + (<usize>i << 3));
      const l = load<f32>(ml + (<usize>i << 3), 4);
      if (nChunks == 1) {
        const o = out + ((<usize>(r * D)) << 2);
        const inv = f32x4.splat(l > 0 ? 1 / l : 0);
        for (let d: usize = 0; d < dBytes; d += 16) v128.store(o + d, f32x4.mul(v128.load(a + d), inv));
      } else {
        const o = parts + ((<usize>((r * nChunks + c) * (D + 4))) << 2);
        store<f32>(o, m);
        store<f32>(o, l, 4);
        for (let d: usize = 0; d < dBytes; d += 16) v128.store(o + 16 + d, v128.load(a + d));
      }
    }
  }
}

export function flash_f32(q: usize, k: usize, v: usize, out: usize, parts: usize, rows: i32, nHeads: i32, nKVHeads: i32, D: i32, scale: f32, startPos: i32, window: i32, noDiag: i32, qBlock: i32, chunkLen: i32, nChunks: i32, u0: i32, u1: i32, scratch: usize): void {
  flashTiles(q, k, v, out, parts, rows, nHeads, nKVHeads, D, scale, startPos, window, noDiag, qBlock, chunkLen, nChunks, u0, u1, scratch, false);
}

export function flash_f16(q: usize, k: usize, v: usize, out: usize, parts: usize, rows: i32, nHeads: i32, nKVHeads: i32, D: i32, scale: f32, startPos: i32, window: i32, noDiag: i32, qBlock: i32, chunkLen: i32, nChunks: i32, u0: i32, u1: i32, scratch: usize): void {
  flashTiles(q, k, v, out, parts, rows, nHeads, nKVHeads, D, scale, startPos, window, noDiag, qBlock, chunkLen, nChunks, u0, u1, scratch, true);
}

// The quantized exports pack two arguments each (a pooled kernel takes at most 16 besides its
// range): windowDiag = window · 2 + noDiag, blocks = qBlock | nChunks << 16.

/** Tiles over an int8 asymmetric cache: kq, vq are the f16 parameters of codes k, v. */
export function flash_q8a(q: usize, k: usize, v: usize, out: usize, parts: usize, rows: i32, nHeads: i32, nKVHeads: i32, D: i32, scale: f32, startPos: i32, windowDiag: i32, blocks: i32, chunkLen: i32, kq: usize, vq: usize, u0: i32, u1: i32, scratch: usize): void {
  flashTiles(q, k, v, out, parts, rows, nHeads, nKVHeads, D, scale, startPos, windowDiag >> 1, windowDiag & 1, blocks & 0xffff, chunkLen, blocks >>> 16, u0, u1, scratch, false, 8, false, kq, vq);
}

/** Tiles over an int8 symmetric cache: kq, vq are the f16 parameters of codes k, v. */
export function flash_q8s(q: usize, k: usize, v: usize, out: usize, parts: usize, rows: i32, nHeads: i32, nKVHeads: i32, D: i32, scale: f32, startPos: i32, windowDiag: i32, blocks: i32, chunkLen: i32, kq: usize, vq: usize, u0: i32, u1: i32, scratch: usize): void {
  flashTiles(q, k, v, out, parts, rows, nHeads, nKVHeads, D, scale, startPos, windowDiag >> 1, windowDiag & 1, blocks & 0xffff, chunkLen, blocks >>> 16, u0, u1, scratch, false, 8, true, kq, vq);
}

/** Tiles over an int4 asymmetric cache: kq, vq are the f16 parameters of codes k, v. */
export function flash_q4a(q: usize, k: usize, v: usize, out: usize, parts: usize, rows: i32, nHeads: i32, nKVHeads: i32, D: i32, scale: f32, startPos: i32, windowDiag: i32, blocks: i32, chunkLen: i32, kq: usize, vq: usize, u0: i32, u1: i32, scratch: usize): void {
  flashTiles(q, k, v, out, parts, rows, nHeads, nKVHeads, D, scale, startPos, windowDiag >> 1, windowDiag & 1, blocks & 0xffff, chunkLen, blocks >>> 16, u0, u1, scratch, false, 4, false, kq, vq);
}

/** Tiles over an int4 symmetric cache: kq, vq are the f16 parameters of codes k, v. */
export function flash_q4s(q: usize, k: usize, v: usize, out: usize, parts: usize, rows: i32, nHeads: i32, nKVHeads: i32, D: i32, scale: f32, startPos: i32, windowDiag: i32, blocks: i32, chunkLen: i32, kq: usize, vq: usize, u0: i32, u1: i32, scratch: usize): void {
  flashTiles(q, k, v, out, parts, rows, nHeads, nKVHeads, D, scale, startPos, windowDiag >> 1, windowDiag & 1, blocks & 0xffff, chunkLen, blocks >>> 16, u0, u1, scratch, false, 4, true, kq, vq);
}

/**
 * Merges the chunks of query vectors [r0, r1) (vector r = t · nHeads + h): with M the largest
 * chunk max, out = Σ exp(m_c − M) acc_c / Σ exp(m_c − M) l_c; zeros where no chunk saw a key.
 */
export function flash_combine(parts: usize, out: usize, nChunks: i32, D: i32, r0: i32, r1: i32, scratch: usize): void {
  const dBytes = <usize>D << 2;
  const slot = (<usize>(D + 4)) << 2;
  for (let r = r0; r < r1; r++) {
    const p = parts + <usize>r * <usize>nChunks * slot;
    const o = out + <usize>r * dBytes;
    let m: f32 = -Infinity;
    for (let c = 0; c < nChunks; c++) m = max(m, load<f32>(p + <usize>c * slot));
    for (let d: usize = 0; d < dBytes; d += 16) v128.store(o + d, f32x4.splat(0));
    if (m == -Infinity) continue;
    let l: f32 = 0;
    for (let c = 0; c < nChunks; c++) {
      const s = p + <usize>c * slot;
      const w = exp1(load<f32>(s) - m);
      if (w == 0) continue;
      l += w * load<f32>(s, 4);
      const wv = f32x4.splat(w);
      for (let d: usize = 0; d < dBytes; d += 16) v128.store(o + d, f32x4.add(v128.load(o + d), f32x4.mul(wv, v128.load(s + 16 + d))));
    }
    const inv = f32x4.splat(1 / l);
    for (let d: usize = 0; d < dBytes; d += 16) v128.store(o + d, f32x4.mul(v128.load(o + d), inv));
  }
}
