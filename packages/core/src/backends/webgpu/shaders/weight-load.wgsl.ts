// How a shader reads element i of a weight tensor `w` as f32, for each storage dtype. 16-bit weights
// keep the file's bytes: packed two per u32 word (decoded here), or read as f16 with shader-f16.
export const weightLoad = {
  f32: /* wgsl */ `fn wload(i: u32) -> f32 { return ld_w(i); }`,
  f16: /* wgsl */ `fn wload(i: u32) -> f32 { return unpack2x16float(ld_w(i >> 1u))[i & 1u]; }`,
  'f16-native': /* wgsl */ `fn wload(i: u32) -> f32 { return f32(ld_w(i)); }`,
  bf16: /* wgsl */ `fn wload(i: u32) -> f32 {
  let v = ld_w(i >> 1u);
  return bitcast<f32>(select(v << 16u, v & 0xffff0000u, (i & 1u) == 1u));
}`,
} as const;

export type WeightLoad = keyof typeof weightLoad;
