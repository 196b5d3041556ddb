// Index of the largest value of each row (the first one on ties), one workgroup per row; -1 for a
// row holding a NaN (tested on the bits: compilers may fold x != x away).
export default /* wgsl */ `
struct Params { rows: u32, n: u32, x: u32, o: u32 }

var<workgroup> bestV: array<f32, 64>;
var<workgroup> bestI: array<u32, 64>;
var<workgroup> sawNaN: atomic<u32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= p.rows) { return; }
  let xo = p.x + row * p.n;
  if (lid.x == 0u) { atomicStore(&sawNaN, 0u); }
  workgroupBarrier();
  var v = -3.402823e38;
  var idx = 0xffffffffu;
  var nan = false;
  for (var i = lid.x; i < p.n; i += 64u) {
    let x = ld_x(xo + i);
    if ((bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u) { nan = true; }
    else if (idx == 0xffffffffu || x > v) { v = x; idx = i; }
  }
  if (nan) { atomicOr(&sawNaN, 1u); }
  bestV[lid.x] = v;
  bestI[lid.x] = idx;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      let ov = bestV[lid.x + s];
      let oi = bestI[lid.x + s];
      let mi = bestI[lid.x];
      if (oi != 0xffffffffu && (mi == 0xffffffffu || ov > bestV[lid.x] || (ov == bestV[lid.x] && oi < mi))) {
        bestV[lid.x] = ov;
        bestI[lid.x] = oi;
      }
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) { st_out(p.o + row, select(i32(bestI[0]), -1, atomicLoad(&sawNaN) != 0u)); }
}
`;
