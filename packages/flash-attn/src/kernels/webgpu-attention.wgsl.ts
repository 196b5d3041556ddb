// The WebGPU flash kernels: the tiles of the wasm kernel (wasm/flash.ts) with workgroup-shared
// memory. A workgroup of 64 invocations takes one tile: a block of M query vectors of one KV head
// (consecutive (row, head) pairs of its group, row-major) and one chunk of keys. Per block of BK
// keys it loads K and V into shared memory once for all M vectors, scores the M × BK pairs, runs
// the online softmax per vector, and accumulates P·V into the invocation's share of the M × D
// outputs (kept in registers). One chunk: the tile writes normalized rows; several (split-K
// decode): (m, l, acc) per vector and chunk, merged by COMBINE_WGSL. f16 caches are bound as u32
// words of two halves and unpacked (no shader-f16 needed).

/** Floats of each shared tile (q, K, V): M × D and BK × D must fit. */
export const TILE_FLOATS = 2048;
/** Largest score tile M × BK. */
export const SCORE_FLOATS = 1024;
/** Most outputs per invocation: TILE_FLOATS / 64. */
const ACC = TILE_FLOATS / 64;

const KV_LOAD = {
  f32: /* wgsl */ `fn kload(i: u32) -> f32 { return ld_keys(i); }
fn vload(i: u32) -> f32 { return ld_values(i); }`,
  f16: /* wgsl */ `fn kload(i: u32) -> f32 { return unpack2x16float(ld_keys(i >> 1u))[i & 1u]; }
fn vload(i: u32) -> f32 { return unpack2x16float(ld_values(i >> 1u))[i & 1u]; }`,
} as const;

const NEG = '-3.402823e38';

export const flashWgsl = (kv: keyof typeof KV_LOAD) => /* wgsl */ `
struct Params { rows: u32, nHeads: u32, nKV: u32, D: u32, startPos: u32, window: u32, kvWidth: u32, q: u32, k: u32, v: u32, o: u32, scale: f32, noDiag: u32, M: u32, BK: u32, chunkLen: u32, nChunks: u32, parts: u32, nwgx: u32 }

var<workgroup> qs: array<f32, ${TILE_FLOATS}>;
var<workgroup> ks: array<f32, ${TILE_FLOATS}>;
var<workgroup> vs: array<f32, ${TILE_FLOATS}>;
var<workgroup> sc: array<f32, ${SCORE_FLOATS}>;
var<workgroup> mrow: array<f32, 64>;
var<workgroup> lrow: array<f32, 64>;
var<workgroup> crow: array<f32, 64>;
${KV_LOAD[kv]}

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
  let kvo = g * D;
  for (var j0 = js; j0 <= je; j0 += i32(BK)) {
    let nb = u32(min(i32(BK), je - j0 + 1));
    for (var idx = tid; idx < nb * D; idx += 64u) {
      let at = (u32(j0) + idx / D) * p.kvWidth + kvo + idx % D;
      ks[idx] = kload(p.k + at);
      vs[idx] = vload(p.v + at);
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
