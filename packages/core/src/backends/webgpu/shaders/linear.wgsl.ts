import { GEMV_MAX_ROWS, GEMV_REDUCE_WGSL } from './gemv-reduce.wgsl.js';
import { weightLoad, type WeightLoad } from './weight-load.wgsl.js';

// out[m, n] = x[m, :] · w[n, :] + bias[n], weights in HF layout [N, K]. Two shapes of work:
// few rows (decode): a workgroup per output column reduces over K for up to 8 rows at once, reading
// each weight once; many rows (prefill): 32 × 32 output tiles through workgroup memory.

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
