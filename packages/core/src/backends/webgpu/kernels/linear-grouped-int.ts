import type { GroupedIntWeights } from '../../../model/grouped-int-linear.js';
import { groupCount, wordsPerRow } from '../../../quant/grouped-int.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { GEMV_MAX_ROWS, GEMV_REDUCE_WGSL } from '../shaders/gemv-reduce.wgsl.js';
import { gpuOf } from '../webgpu-backend.js';

// out[m, n] = x[m, :] · W[n, :] + bias[n] with W in grouped int codes (quant/grouped-int.ts). One
// workgroup per output row of W; each invocation takes every 64th column, decodes its code from
// the row's bit stream (a 3-bit code may span two words), its group's f16 scale (unpack2x16float,
// no shader-f16 needed) and u8 zero point, gathers x through the act-order permutation when there
// is one, and accumulates for up to 8 rows of x; a tree reduction sums the 64 partial results.
const wgsl = (permuted: boolean, hasBias: boolean) => /* wgsl */ `
struct Params { M: u32, K: u32, N: u32, x: u32, o: u32, ostride: u32, G: u32, groups: u32, bits: u32, wpr: u32, c: u32, b: u32 }
${GEMV_REDUCE_WGSL}

fn code_at(n: u32, j: u32) -> u32 {
  let bit = j * p.bits;
  let wi = p.c + n * p.wpr + (bit >> 5u);
  let s = bit & 31u;
  var v = ld_codes(wi) >> s;
  if (s + p.bits > 32u) { v = v | (ld_codes(wi + 1u) << (32u - s)); }
  return v & ((1u << p.bits) - 1u);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let n = wid.y * nwg.x + wid.x;
  if (n >= p.N) { return; }
  var acc: array<f32, ${GEMV_MAX_ROWS}>;
  for (var j = lid.x; j < p.K; j += 64u) {
    let k = n * p.groups + j / p.G;
    let scale = unpack2x16float(ld_scales(k >> 1u))[k & 1u];
    let zero = f32((ld_zeros(k >> 2u) >> ((k & 3u) * 8u)) & 255u);
    let w = scale * (f32(code_at(n, j)) - zero);
    let xi = ${permuted ? 'ld_perm(j)' : 'j'};
    for (var m = 0u; m < p.M; m++) { acc[m] += w * ld_x(p.x + m * p.K + xi); }
  }
  let total = gemv_reduce(acc, lid.x, p.M);
  if (lid.x < p.M) { st_out(p.o + lid.x * p.ostride + n, total + ${hasBias ? 'ld_bias(p.b + n)' : '0.0'}); }
}
`;

/** The grouped int linear kernel on WebGPU (op 'linearGroupedInt'), any bits, groups and permutation. */
export function linearGroupedIntWebGpu(x: Tensor, w: GroupedIntWeights, bias: Tensor | null, out: Tensor): void {
  const gpu = gpuOf(out);
  const { inFeatures: K, outFeatures: N, groupSize: G, bits } = w;
  const T = x.size / K;
  if (!Number.isInteger(T) || out.size !== T * N) throw new Error(`linearGroupedInt ${w.name}: x ${x} and out ${out} do not fit a [${N}, ${K}] weight`);
  const whole = (t: Tensor) => {
    const seg = gpu.at(t);
    if (seg.offset !== 0) throw new Error(`linearGroupedInt ${w.name}: ${t} must start its buffer`);
    return seg.buf;
  };
  const codes = gpu.at(w.codes);
  const sb = bias ? gpu.at(bias) : null;
  const key = `linearGroupedInt:${w.perm ? 'perm' : ''}:${bias ? 'bias' : ''}`;
  let staged;
  for (let t0 = 0; t0 < T; t0 += GEMV_MAX_ROWS) {
    const M = Math.min(GEMV_MAX_ROWS, T - t0);
    const sx = gpu.at(x, t0 * K, M * K);
    const so = gpu.at(out, t0 * N, M * N);
    staged = gpu.dispatch(
      {
        key,
        code: () => wgsl(w.perm !== null, bias !== null),
        bindings: [
          { name: 'x', buf: sx.buf, type: 'f32' },
          { name: 'codes', buf: codes.buf, type: 'u32' },
          { name: 'scales', buf: whole(w.scales), type: 'u32' },
          { name: 'zeros', buf: whole(w.zeros), type: 'u32' },
          ...(w.perm ? [{ name: 'perm', buf: whole(w.perm), type: 'u32' as const }] : []),
          ...(sb ? [{ name: 'bias', buf: sb.buf, type: 'f32' as const }] : []),
          { name: 'out', buf: so.buf, type: 'f32', write: true },
        ],
        params: [M, K, N, sx.offset, so.offset, N, G, groupCount(K, G), bits, wordsPerRow(K, bits), codes.offset, sb?.offset ?? 0],
        workgroups: N <= 65535 ? [N, 1] : [Math.ceil(N / Math.ceil(N / 65535)), Math.ceil(N / 65535)],
      },
      staged,
    );
  }
}
