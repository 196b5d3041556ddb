// Rotary embedding (HF rotate_half) in place; cos and sin per (token, frequency) come in `data`:
// cos at [t * half + i], sin at [rows * half + t * half + i].
export default /* wgsl */ `
struct Params { n: u32, rows: u32, nHeads: u32, half: u32, x: u32 }

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let id = flat_id(wid, nwg, lid, 64u);
  if (id >= p.n) { return; }
  let i = id % p.half;
  let th = id / p.half;
  let t = th / p.nHeads;
  let base = p.x + th * 2u * p.half + i;
  let c = data[t * p.half + i];
  let s = data[p.rows * p.half + t * p.half + i];
  let a = ld_x(base);
  let b = ld_x(base + p.half);
  st_x(base, a * c - b * s);
  st_x(base + p.half, b * c + a * s);
}
`;
