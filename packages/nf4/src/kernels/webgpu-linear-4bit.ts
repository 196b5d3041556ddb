import { f32Bits, GEMV_MAX_ROWS, GEMV_REDUCE_WGSL, gpuOf, type Tensor } from '@lithe/core';
import type { FourBitWeights } from '../four-bit-weights.js';

/** Rows of x one dispatch handles; longer inputs run in chunks of this many rows. */
const MAX_ROWS = GEMV_MAX_ROWS;

// out[m, n] = x[m, :] · W[n, :] + bias[n] with W in 4-bit blocks. One workgroup per output column;
// each invocation reads one 32-bit word (eight codes) at a time, decodes them through the codebook
// (data[0..16)) times the block's absmax, and accumulates for up to 8 rows of x; a tree reduction
// sums the 64 partial results. Double-quantized absmax: data[16 + code] · scale[block / NB] + offset.
const wgsl = (dq: boolean, hasBias: boolean) => /* wgsl */ `
struct Params { M: u32, K: u32, N: u32, x: u32, o: u32, ostride: u32, B: u32, NB: u32, offset: f32, c: u32, b: u32 }
${GEMV_REDUCE_WGSL}

fn absmax_of(blk: u32) -> f32 {
  ${dq ? 'let c = (ld_acodes(blk >> 2u) >> ((blk & 3u) * 8u)) & 255u;\n  return data[16u + c] * ld_ascale(blk / p.NB) + p.offset;' : 'return ld_absmax(blk);'}
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let n = wid.y * nwg.x + wid.x;
  if (n >= p.N) { return; }
  var acc: array<f32, ${MAX_ROWS}>;
  let words = p.K / 8u;
  let w0 = n * words;
  for (var wi = lid.x; wi < words; wi += 64u) {
    let v = ld_codes(p.c + w0 + wi);
    let s = absmax_of(((w0 + wi) * 8u) / p.B);
    var w: array<f32, 8>;
    for (var j = 0u; j < 4u; j++) {
      let byte = (v >> (8u * j)) & 255u;
      w[2u * j] = data[byte >> 4u] * s;
      w[2u * j + 1u] = data[byte & 15u] * s;
    }
    let k = wi * 8u;
    for (var m = 0u; m < p.M; m++) {
      let xo = p.x + m * p.K + k;
      var t = 0.0;
      for (var j = 0u; j < 8u; j++) { t += w[j] * ld_x(xo + j); }
      acc[m] += t;
    }
  }
  let total = gemv_reduce(acc, lid.x, p.M);
  if (lid.x < p.M) { st_out(p.o + lid.x * p.ostride + n, total + ${hasBias ? 'ld_bias(p.b + n)' : '0.0'}); }
}
`;

/** The codebook and the 256-entry absmax map, bound as the per-call `data` array. */
const tables = new WeakMap<FourBitWeights, Float32Array>();
function tablesOf(w: FourBitWeights): Float32Array {
  let t = tables.get(w);
  if (!t) {
    t = new Float32Array(16 + 256);
    t.set(w.codebook);
    t.set(w.nestedMap, 16);
    tables.set(w, t);
  }
  return t;
}

/**
 * The 4-bit linear kernel on WebGPU (op 'linear4bit'): dequantizes inside the product, as the CPU
 * kernel does. Needs rows of a multiple of 8 values and a block size of a multiple of 8, so a
 * 32-bit word of codes never straddles two blocks (blocks may cross rows).
 */
export function linear4bitWebGpu(x: Tensor, w: FourBitWeights, bias: Tensor | null, out: Tensor): void {
  const gpu = gpuOf(out);
  const { inFeatures: K, outFeatures: N, blockSize: B } = w;
  if (K % 8 !== 0 || B % 8 !== 0) throw new Error(`linear4bit ${w.name}: WebGPU needs rows and blocks of a multiple of 8 values (rows of ${K}, blocks of ${B})`);
  const T = x.size / K;
  const dq = w.absmax === null;
  const codes = gpu.at(w.codes);
  if (codes.offset % 4 !== 0) throw new Error(`linear4bit ${w.name}: codes must start on a 4-byte boundary`);
  const whole = (t: Tensor) => {
    const seg = gpu.at(t);
    if (seg.offset !== 0) throw new Error(`linear4bit ${w.name}: ${t} must start its buffer`);
    return seg.buf;
  };
  const stats = dq
    ? [
        { name: 'acodes', buf: whole(w.absmaxCodes!), type: 'u32' as const },
        { name: 'ascale', buf: whole(w.absmaxScale!), type: 'f32' as const },
      ]
    : [{ name: 'absmax', buf: whole(w.absmax!), type: 'f32' as const }];
  const sb = bias ? gpu.at(bias) : null;
  const key = `linear4bit:${dq ? 'dq' : 'f32'}:${bias ? 'bias' : ''}`;
  let staged;
  for (let t0 = 0; t0 < T; t0 += MAX_ROWS) {
    const M = Math.min(MAX_ROWS, T - t0);
    const sx = gpu.at(x, t0 * K, M * K);
    const so = gpu.at(out, t0 * N, M * N);
    staged = gpu.dispatch(
      {
        key,
        code: () => wgsl(dq, bias !== null),
        bindings: [
          { name: 'x', buf: sx.buf, type: 'f32' },
          { name: 'codes', buf: codes.buf, type: 'u32' },
          ...stats,
          ...(sb ? [{ name: 'bias', buf: sb.buf, type: 'f32' as const }] : []),
          { name: 'out', buf: so.buf, type: 'f32', write: true },
        ],
        params: [M, K, N, sx.offset, so.offset, N, B, w.nestedBlockSize || 1, f32Bits(w.offset), codes.offset / 4, sb?.offset ?? 0],
        data: { type: 'f32', array: tablesOf(w) },
        workgroups: N <= 65535 ? [N, 1] : [Math.ceil(N / Math.ceil(N / 65535)), Math.ceil(N / 65535)],
      },
      staged,
    );
  }
}
