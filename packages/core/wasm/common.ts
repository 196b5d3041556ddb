// Helpers shared by the kernel modules (kernels.ts, kquants.ts): inlined where they are used.

// ---------------------------------------------------------------------------------------------
// 16-bit floats
// ---------------------------------------------------------------------------------------------

// A sign-extended f16 in an i32, shifted into f32 position: the f32 whose value is the half's
// value times 2^-112 (exact for normals, subnormals and zero; inf/NaN become large finite values).
export const HALF_MASK: i32 = 0x8fffe000;
// 2^112: rescales such f32s to the half's value.
export const TWO_112: f32 = 5.192296858534828e33;

@inline export function halfScaled4(h: v128): v128 {
  return v128.and(i32x4.shl(h, 13), i32x4.splat(HALF_MASK));
}

@inline export function halfScaled(h: i32): f32 {
  return reinterpret<f32>((h << 13) & HALF_MASK);
}

@inline export function halfToF32(p: usize): f32 {
  return halfScaled(<i32>load<i16>(p)) * TWO_112;
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
