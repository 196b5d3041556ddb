// The end of the matrix-vector kernels (core's linear, nf4's 4-bit linear): a workgroup of 64
// invocations per output column, each holding partial sums for up to GEMV_MAX_ROWS rows of x.

/** Rows of x one matrix-vector dispatch handles. */
export const GEMV_MAX_ROWS = 8;

/** Include in a shader's module scope. */
export const GEMV_REDUCE_WGSL = /* wgsl */ `
var<workgroup> red: array<f32, ${64 * GEMV_MAX_ROWS}>;

// Sums the 64 invocations' acc[m] for rows m < M; invocation m gets row m's total (others 0).
// Every invocation must call it (it has barriers).
fn gemv_reduce(acc: array<f32, ${GEMV_MAX_ROWS}>, tid: u32, M: u32) -> f32 {
  for (var m = 0u; m < M; m++) { red[m * 64u + tid] = acc[m]; }
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (tid < s) {
      for (var m = 0u; m < M; m++) { red[m * 64u + tid] += red[m * 64u + tid + s]; }
    }
    workgroupBarrier();
  }
  if (tid < M) { return red[tid * 64u]; }
  return 0.0;
}
`;
