// Softmax over the last dimension, one workgroup per row.
export default /* wgsl */ `
struct Params { rows: u32, n: u32, x: u32, o: u32 }

var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= p.rows) { return; }
  let xo = p.x + row * p.n;
  let oo = p.o + row * p.n;
  var m = -3.402823e38;
  for (var i = lid.x; i < p.n; i += 64u) { m = max(m, ld_x(xo + i)); }
  red[lid.x] = m;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid.x < s) { red[lid.x] = max(red[lid.x], red[lid.x + s]); }
    workgroupBarrier();
  }
  let rowMax = red[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var i = lid.x; i < p.n; i += 64u) { sum += exp(ld_x(xo + i) - rowMax); }
  red[lid.x] = sum;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid.x < s) { red[lid.x] += red[lid.x + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / red[0];
  for (var i = lid.x; i < p.n; i += 64u) { st_out(oo + i, exp(ld_x(xo + i) - rowMax) * inv); }
}
`;
