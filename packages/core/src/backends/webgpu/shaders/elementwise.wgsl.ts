// out[i] = a[i] + b[i] and out[i] = silu(gate[i]) * up[i]: one invocation per element.
const body = (expr: string) => /* wgsl */ `
struct Params { n: u32, a: u32, b: u32, o: u32 }

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat_id(wid, nwg, lid, 64u);
  if (i >= p.n) { return; }
  let a = ld_a(p.a + i);
  let b = ld_b(p.b + i);
  st_out(p.o + i, ${expr});
}
`;

export const addWgsl = body('a + b');
export const swigluWgsl = body('a / (1.0 + exp(-a)) * b');
