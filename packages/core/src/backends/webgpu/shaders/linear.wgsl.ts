import { GEMV_MAX_ROWS, GEMV_REDUCE_WGSL } from './gemv-reduce.wgsl.js';
import { weightLoad, type WeightLoad } from './weight-load.wgsl.js';

// out[m, n] = x[m, :] · w[n, :] + bias[n], weights in HF layout [N, K]. Three shapes of work:
// one row (decode): a workgroup per output column reduces over K; 2 to 16 rows (a batch of
// decoding sequences, speculative verification): tiles of 8 columns × all rows, x staged in
// workgroup memory, each weight read once; many rows (prefill): 32 × 32 output tiles.

const params = 'struct Params { M: u32, K: u32, N: u32, x: u32, w: u32, o: u32, ostride: u32, b: u32 }';
const bias = (has: boolean, n: string) => (has ? `ld_bias(p.b + ${n})` : '0.0');

export const gemvWgsl = (load: WeightLoad, hasBias: boolean) => /* wgsl */ `
${params}
${weightLoad[load]}
${GEMV_REDUCE_WGSL}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let n = wid.y * nwg.x + wid.x;
  if (n >= p.N) { return; }
  var acc: array<f32, ${GEMV_MAX_ROWS}>;
  let wo = p.w + n * p.K;
  for (var k = lid.x; k < p.K; k += 64u) {
    let wv = wload(wo + k);
    for (var m = 0u; m < p.M; m++) { acc[m] += wv * ld_x(p.x + m * p.K + k); }
  }
  let total = gemv_reduce(acc, lid.x, p.M);
  if (lid.x < p.M) { st_out(p.o + lid.x * p.ostride + n, total + ${bias(hasBias, 'n')}); }
}
`;

// Few rows on a CPU adapter (llvmpipe): one invocation per output column, no barriers; each
// invocation walks its weight row once for all rows of x.
export const gemvColumnsWgsl = (load: WeightLoad, hasBias: boolean, rows: number) => /* wgsl */ `
${params}
${weightLoad[load]}

// Rows are a constant here so the accumulators stay in registers.
const ROWS = ${rows}u;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let n = flat_id(wid, nwg, lid, 64u);
  if (n >= p.N) { return; }
  var acc: array<f32, ROWS>;
  let wo = p.w + n * p.K;
  for (var k = 0u; k < p.K; k++) {
    let wv = wload(wo + k);
    for (var m = 0u; m < ROWS; m++) { acc[m] += wv * ld_x(p.x + m * p.K + k); }
  }
  for (var m = 0u; m < ROWS; m++) { st_out(p.o + m * p.ostride + n, acc[m] + ${bias(hasBias, 'n')}); }
}
`;

/** Rows the small-row tiled kernel handles at once. */
export const SMALL_ROWS_MAX = 16;

// 64 invocations = 8 output columns × 8 lanes over K. A chunk of 64 k of every row of x is staged
// in workgroup memory once per workgroup (instead of each column's invocations loading it from
// global memory), each invocation multiplies its weights into the M row accumulators, and the 8
// lanes of a column are summed at the end.
export const gemmSmallRowsWgsl = (load: WeightLoad, hasBias: boolean) => /* wgsl */ `
${params}
${weightLoad[load]}

const TN = 8u;
const LANES = 8u;
const KC = 64u;
var<workgroup> xs: array<f32, ${SMALL_ROWS_MAX * 64}>;
var<workgroup> red: array<f32, ${SMALL_ROWS_MAX * 64}>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tid = lid.x;
  let col = tid / LANES;
  let lane = tid % LANES;
  let n = (wid.y * nwg.x + wid.x) * TN + col;
  var acc: array<f32, ${SMALL_ROWS_MAX}>;
  for (var k0 = 0u; k0 < p.K; k0 += KC) {
    for (var e = tid; e < p.M * KC; e += 64u) {
      let k = k0 + e % KC;
      var xv = 0.0;
      if (k < p.K) { xv = ld_x(p.x + (e / KC) * p.K + k); }
      xs[e] = xv;
    }
    workgroupBarrier();
    if (n < p.N) {
      let kn = min(KC, p.K - k0);
      for (var kk = lane; kk < kn; kk += LANES) {
        let wv = wload(p.w + n * p.K + k0 + kk);
        for (var m = 0u; m < p.M; m++) { acc[m] += wv * xs[m * KC + kk]; }
      }
    }
    workgroupBarrier();
  }
  for (var m = 0u; m < p.M; m++) { red[m * 64u + tid] = acc[m]; }
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var m = 0u; m < p.M; m++) { red[m * 64u + tid] += red[m * 64u + tid + s]; }
    }
    workgroupBarrier();
  }
  if (lane == 0u && n < p.N) {
    for (var m = 0u; m < p.M; m++) { st_out(p.o + m * p.ostride + n, red[m * 64u + tid] + ${bias(hasBias, 'n')}); }
  }
}
`;

export const gemmWgsl = (load: WeightLoad, hasBias: boolean) => /* wgsl */ `
${params}
${weightLoad[load]}

const TM = 32u;
const TN = 32u;
const TK = 16u;
var<workgroup> xs: array<f32, 512>;
var<workgroup> ws: array<f32, 512>;

@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let m0 = wid.y * TM;
  let n0 = wid.x * TN;
  let li = lid.y * 8u + lid.x;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    for (var e = 0u; e < 8u; e++) {
      let idx = li * 8u + e;
      let r = idx / TK;
      let k = k0 + idx % TK;
      var xv = 0.0;
      if (m0 + r < p.M && k < p.K) { xv = ld_x(p.x + (m0 + r) * p.K + k); }
      xs[idx] = xv;
      var wv = 0.0;
      if (n0 + r < p.N && k < p.K) { wv = wload(p.w + (n0 + r) * p.K + k); }
      ws[idx] = wv;
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = xs[(lid.y * 4u + i) * TK + k];
        b[i] = ws[(lid.x * 4u + i) * TK + k];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] += a[i] * b[j]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y * 4u + i;
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (m < p.M && n < p.N) { st_out(p.o + m * p.ostride + n, acc[i * 4u + j] + ${bias(hasBias, 'n')}); }
    }
  }
}
`;
