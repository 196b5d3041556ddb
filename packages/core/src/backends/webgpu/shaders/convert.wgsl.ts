// f32 -> f16, two values per invocation packed into one u32 word (no shader-f16 needed). The
// rounding is done here in integer arithmetic, nearest even, so every backend stores the same bits
// (WGSL leaves pack2x16float's rounding to the implementation).
export default /* wgsl */ `
struct Params { words: u32, src: u32, dst: u32 }

fn f16_bits(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  let sign = (b >> 16u) & 0x8000u;
  let a = b & 0x7fffffffu;
  if (a >= 0x7f800000u) { return sign | 0x7c00u | select(0u, 0x200u, a > 0x7f800000u); }
  if (a >= 0x477ff000u) { return sign | 0x7c00u; }
  if (a < 0x38800000u) {
    // A subnormal half: |x| / 2^-24 rounded; below 2^-25 that is zero.
    let e = a >> 23u;
    if (e < 102u) { return sign; }
    let m = (a & 0x7fffffu) | 0x800000u;
    let shift = 126u - e;
    var h = m >> shift;
    let rem = m & ((1u << shift) - 1u);
    let mid = 1u << (shift - 1u);
    if (rem > mid || (rem == mid && (h & 1u) == 1u)) { h += 1u; }
    return sign | h;
  }
  var h = (a - 0x38000000u) >> 13u;
  let rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) == 1u)) { h += 1u; }
  return sign | h;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat_id(wid, nwg, lid, 64u);
  if (i >= p.words) { return; }
  let lo = f16_bits(ld_src(p.src + 2u * i));
  let hi = f16_bits(ld_src(p.src + 2u * i + 1u));
  st_dst(p.dst + i, lo | (hi << 16u));
}
`;
