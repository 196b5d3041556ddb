import { weightLoad, type WeightLoad } from './weight-load.wgsl.js';

// out[t] = table[ids[t]] for the ids whose row lies in this piece of the table ([rowStart, rowEnd)).
export const embeddingWgsl = (load: WeightLoad) => /* wgsl */ `
struct Params { n: u32, dim: u32, rowStart: u32, rowEnd: u32, w: u32, o: u32 }
${weightLoad[load]}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat_id(wid, nwg, lid, 64u);
  if (i >= p.n) { return; }
  let t = i / p.dim;
  let c = i % p.dim;
  let id = u32(data[t]);
  if (id < p.rowStart || id >= p.rowEnd) { return; }
  st_out(p.o + i, wload(p.w + (id - p.rowStart) * p.dim + c));
}
`;
