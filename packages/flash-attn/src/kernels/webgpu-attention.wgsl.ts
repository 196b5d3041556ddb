// The WebGPU flash kernels: the tiles of the wasm kernel (wasm/flash.ts) with workgroup-shared
// memory. A workgroup of 64 invocations takes one tile: a block of M query vectors of one KV head
// (consecutive (row, head) pairs of its group, row-major) and one chunk of keys. Per block of BK
// keys it loads K and V into shared memory once for all M vectors, scores the M × BK pairs, runs
// the online softmax per vector, and accumulates P·V into the invocation's share of the M × D
// outputs (kept in registers). One chunk: the tile writes normalized rows; several (split-K
// decode): (m, l, acc) per vector and chunk, merged by COMBINE_WGSL. f16 caches are bound as u32
// words of two halves and unpacked (no shader-f16 needed); block-quantized caches (kv-quant's
// int8 / int4 codes with f16 scales and zeros) are bound as u32 words too and dequantized as the
// block is loaded, so everything past the load is the same shader for every cache kind.

/** Floats of each shared tile (q, K, V): M × D and BK × D must fit. */
export const TILE_FLOATS = 2048;
/** Largest score tile M × BK. */
export const SCORE_FLOATS = 1024;
/** Most outputs per invocation: TILE_FLOATS / 64. */
const ACC = TILE_FLOATS / 64;

/** How the tile reads the cache: dense f32 / f16, or int8 / int4 codes, asymmetric or symmetric. */
export type WebGpuFlashKind = 'f32' | 'f16' | 'q8a' | 'q8s' | 'q4a' | 'q4s';

/** WGSL: code `e` (0-based within its 32-bit word) as f32; little-endian, low nibble first. */
const CODE_OF = {
  q8a: 'f32((w >> (8u * e)) & 255u)',
  q8s: 'f32(bitcast<i32>(w << (24u - 8u * e)) >> 24u)',
  q4a: 'f32((w >> (4u * e)) & 15u)',
  q4s: 'f32(bitcast<i32>(w << (28u - 4u * e)) >> 28u)',
} as const;

/**
 * `fn <fn>(j, g, d) -> f32`: element d of KV head g at cache position j. Offsets in Params are in
 * the binding's own units: f32 / halves for dense caches, codes (bytes or nibbles) and halves
 * for quantized ones. Quantized rows dequantize as x = c·scale − zero·scale (asymmetric; the zero
 * itself where the scale is 0, a constant row) or c·scale (symmetric), kv-quant's formula.
 */
function loadFn(kind: WebGpuFlashKind, fn: string, codes: string, off: string, params: string): string {
  const at = `p.${off} + j * p.kvWidth + g * p.D + d`;
  if (kind === 'f32') return `fn ${fn}(j: u32, g: u32, d: u32) -> f32 { return ld_${codes}(${at}); }`;
  if (kind === 'f16') return `fn ${fn}(j: u32, g: u32, d: u32) -> f32 { let i = ${at}; return unpack2x16float(ld_${codes}(i >> 1u))[i & 1u]; }`;
  const per = kind.startsWith('q8') ? 4 : 8;
  const asym = kind.endsWith('a');
  return `fn ${fn}(j: u32, g: u32, d: u32) -> f32 {
  let n = ${at};
  let w = ld_${codes}(n / ${per}u);
  let e = n % ${per}u;
  let c = ${CODE_OF[kind]};
  let u = p.${params} + (j * p.nKV + g) * ${asym ? 2 : 1}u;
  let a = unpack2x16float(ld_${params}(u >> 1u))[u & 1u];
  ${asym ? `let z = unpack2x16float(ld_${params}((u + 1u) >> 1u))[(u + 1u) & 1u];
  return select(c * a - z * a, z, a == 0.0);` : 'return c * a;'}
}`;
}

const kvLoad = (kind: WebGpuFlashKind) => `${loadFn(kind, 'kload', 'keys', 'k', 'kp')}\n${loadFn(kind, 'vload', 'values', 'v', 'vp')}`;

const NEG = '-3.402823e38';

export const flashWgsl = (kind: WebGpuFlashKind) => /* wgsl */ `
struct Params { rows: u32, nHeads: u32, nKV: u32, D: u32, startPos: u32, window: u32, kvWidth: u32, q: u32, k: u32, v: u32, o: u32, scale: f32, noDiag: u32, M: u32, BK: u32, chunkLen: u32, nChunks: u32, parts: u32, nwgx: u32, kp: u32, vp: u32 }

var<workgroup> qs: array<f32, ${TILE_FLOATS}>;
var<workgroup> ks: array<f32, ${TILE_FLOATS}>;
var<workgroup> vs: array<f32, ${TILE_FLOATS}>;
var<workgroup> sc: array<f32, ${SCORE_FLOATS}>;
var<workgroup> mrow: array<f32, 64>;
var<workgroup> lrow: array<f32, 64>;
var<workgroup> crow: array<f32, 64>;
${kvLoad(kind)}

// Positions row t attends to: [lo, hi] (signed: hi is -1 for a first row with noDiag).
fn row_lo(t: u32) -> i32 {
  if (p.window > 0u) { return max(0, i32(p.startPos + t) - i32(p.window) + 1); }
  return 0;
}
fn row_hi(t: u32) -> i32 { return i32(p.startPos + t) - i32(p.noDiag); }

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tid = lid.x;
  let D = p.D;
  let M = p.M;
  let BK = p.BK;
  let group = p.nHeads / p.nKV;
  let nVec = p.rows * group;
  let nVB = (nVec + M - 1u) / M;
  let u = wid.y * p.nwgx + wid.x;
  if (u >= p.nKV * nVB * p.nChunks) { return; }
  let c = u % p.nChunks;
  let rest = u / p.nChunks;
  let vb = rest % nVB;
  let g = rest / nVB;
  let v0 = vb * M;
  let Mt = min(M, nVec - v0);

  for (var idx = tid; idx < Mt * D; idx += 64u) {
    let i = idx / D;
    let v = v0 + i;
    let t = v / group;
    let h = g * group + v % group;
    qs[idx] = ld_q(p.q + (t * p.nHeads + h) * D + idx % D) * p.scale;
  }
  if (tid < Mt) {
    mrow[tid] = ${NEG};
    lrow[tid] = 0.0;
  }
  var acc: array<f32, ${ACC}>;
  for (var r = 0u; r < ${ACC}u; r++) { acc[r] = 0.0; }
  workgroupBarrier();

  let loT = row_lo(v0 / group);
  let hiT = row_hi((v0 + Mt - 1u) / group);
  let js = loT + i32(c * p.chunkLen);
  let je = min(hiT, js + i32(p.chunkLen) - 1);
  for (var j0 = js; j0 <= je; j0 += i32(BK)) {
    let nb = u32(min(i32(BK), je - j0 + 1));
    for (var idx = tid; idx < nb * D; idx += 64u) {
      let j = u32(j0) + idx / D;
      ks[idx] = kload(j, g, idx % D);
      vs[idx] = vload(j, g, idx % D);
    }
    workgroupBarrier();
    for (var idx = tid; idx < Mt * BK; idx += 64u) {
      let i = idx / BK;
      let jj = idx % BK;
      let t = (v0 + i) / group;
      let j = j0 + i32(jj);
      var s = ${NEG};
      if (jj < nb && j >= row_lo(t) && j <= row_hi(t)) {
        var dot = 0.0;
        for (var d = 0u; d < D; d++) { dot += qs[i * D + d] * ks[jj * D + d]; }
        s = dot;
      }
      sc[idx] = s;
    }
    workgroupBarrier();
    if (tid < Mt) {
      let i = tid;
      var mx = ${NEG};
      for (var jj = 0u; jj < nb; jj++) { mx = max(mx, sc[i * BK + jj]); }
      if (mx <= ${NEG}) {
        // No key of this block for this vector: zero weights, its state unchanged.
        crow[i] = 1.0;
        for (var jj = 0u; jj < nb; jj++) { sc[i * BK + jj] = 0.0; }
      } else {
        let mNew = max(mrow[i], mx);
        let corr = exp(mrow[i] - mNew);
        var sum = 0.0;
        for (var jj = 0u; jj < nb; jj++) {
          let s = sc[i * BK + jj];
          let e = select(0.0, exp(s - mNew), s > ${NEG});
          sc[i * BK + jj] = e;
          sum += e;
        }
        crow[i] = corr;
        lrow[i] = lrow[i] * corr + sum;
        mrow[i] = mNew;
      }
    }
    workgroupBarrier();
    for (var r = 0u; r < ${ACC}u; r++) {
      let o = tid + r * 64u;
      if (o < Mt * D) {
        let i = o / D;
        let d = o % D;
        var a = acc[r] * crow[i];
        for (var jj = 0u; jj < nb; jj++) { a += sc[i * BK + jj] * vs[jj * D + d]; }
        acc[r] = a;
      }
    }
    workgroupBarrier();
  }

  for (var r = 0u; r < ${ACC}u; r++) {
    let o = tid + r * 64u;
    if (o < Mt * D) {
      let i = o / D;
      let d = o % D;
      let v = v0 + i;
      let row = (v / group) * p.nHeads + g * group + v % group;
      if (p.nChunks == 1u) {
        let l = lrow[i];
        st_out(p.o + row * D + d, select(0.0, acc[r] / l, l > 0.0));
      } else {
        let slot = p.parts + (row * p.nChunks + c) * (D + 2u);
        st_parts(slot + 2u + d, acc[r]);
        if (d == 0u) {
          st_parts(slot, mrow[i]);
          st_parts(slot + 1u, lrow[i]);
        }
      }
    }
  }
}
`;

/** Merges the chunks of each query vector (one workgroup per vector, invocations over D). */
export const COMBINE_WGSL = /* wgsl */ `
struct Params { vectors: u32, D: u32, nChunks: u32, parts: u32, o: u32, nwgx: u32 }

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = wid.y * p.nwgx + wid.x;
  if (r >= p.vectors) { return; }
  let D = p.D;
  let base = p.parts + r * p.nChunks * (D + 2u);
  var m = ${NEG};
  for (var c = 0u; c < p.nChunks; c++) {
    let s = base + c * (D + 2u);
    if (ld_parts(s + 1u) > 0.0) { m = max(m, ld_parts(s)); }
  }
  for (var d = lid.x; d < D; d += 64u) {
    var l = 0.0;
    var a = 0.0;
    for (var c = 0u; c < p.nChunks; c++) {
      let s = base + c * (D + 2u);
      let lc = ld_parts(s + 1u);
      if (lc > 0.0) {
        let w = exp(ld_parts(s) - m);
        l += w * lc;
        a += w * ld_parts(s + 2u + d);
      }
    }
    st_out(p.o + r * D + d, select(0.0, a / l, l > 0.0));
  }
}
`;
