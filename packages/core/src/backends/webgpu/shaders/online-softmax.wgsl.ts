// The online softmax of the attention kernels (core's dense one, and kv-quant's), for a workgroup
// of 64 invocations that score keys 64 at a time, one per invocation. Include it in a shader's
// module scope; the kernel keeps the running max `m` and denominator `l` in function variables.
export const ONLINE_SOFTMAX_WGSL = /* wgsl */ `
var<workgroup> pj: array<f32, 64>;
var<workgroup> red: array<f32, 64>;

// Takes this invocation's score s (valid: its key is in range) for the current block of 64 keys,
// leaves the block's weights exp(s - m) in pj[0..63], updates m and l, and returns the factor that
// rescales sums over earlier blocks. Every invocation must call it (it has barriers); read pj
// afterwards, then barrier before the next block.
fn online_softmax_block(s: f32, valid: bool, tid: u32, m: ptr<function, f32>, l: ptr<function, f32>) -> f32 {
  red[tid] = s;
  workgroupBarrier();
  for (var st = 32u; st > 0u; st >>= 1u) {
    if (tid < st) { red[tid] = max(red[tid], red[tid + st]); }
    workgroupBarrier();
  }
  let mNew = max(*m, red[0]);
  workgroupBarrier();
  var e = 0.0;
  if (valid) { e = exp(s - mNew); }
  pj[tid] = e;
  red[tid] = e;
  workgroupBarrier();
  for (var st = 32u; st > 0u; st >>= 1u) {
    if (tid < st) { red[tid] += red[tid + st]; }
    workgroupBarrier();
  }
  let corr = exp(*m - mNew);
  *l = *l * corr + red[0];
  *m = mNew;
  return corr;
}
`;
