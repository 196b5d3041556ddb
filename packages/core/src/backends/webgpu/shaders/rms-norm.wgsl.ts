// Row-wise RMSNorm, one workgroup per row: out = x / sqrt(mean(x²) + eps) * weight.
export default /* wgsl */ `
struct Params { rows: u32, dim: u32, x: u32, w: u32, o: u32, eps: f32 }

var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= p.rows) { return; }
  let xo = p.x + row * p.dim;
  let oo = p.o + row * p.dim;
  var ss = 0.0;
  for (var i = lid.x; i < p.dim; i += 64u) {
    let v = ld_x(xo + i);
    ss += v * v;
  }
  red[lid.x] = ss;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid.x < s) { red[lid.x] += red[lid.x + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(red[0] / f32(p.dim) + p.eps);
  for (var i = lid.x; i < p.dim; i += 64u) {
    st_out(oo + i, ld_x(xo + i) * inv * ld_w(p.w + i));
  }
}
`;
