// Causal GQA attention over a dense f32 or f16 cache, one workgroup per (head, query row). Keys are taken
// 64 at a time (one per invocation) with an online softmax, so memory stays O(headDim) whatever the
// context length; invocation d then accumulates value dimensions d, d + 64, ... (headDim <= 256).
// f16 keys and values are bound as u32 words of two halves and unpacked (no shader-f16 needed).
import { ONLINE_SOFTMAX_WGSL } from './online-softmax.wgsl.js';

export const ATTENTION_MAX_HEAD_DIM = 256;

const KV_LOAD = {
  f32: /* wgsl */ `fn kload(i: u32) -> f32 { return ld_keys(i); }
fn vload(i: u32) -> f32 { return ld_values(i); }`,
  f16: /* wgsl */ `fn kload(i: u32) -> f32 { return unpack2x16float(ld_keys(i >> 1u))[i & 1u]; }
fn vload(i: u32) -> f32 { return unpack2x16float(ld_values(i >> 1u))[i & 1u]; }`,
} as const;

export const attentionWgsl = (kv: keyof typeof KV_LOAD) => /* wgsl */ `
struct Params { rows: u32, nHeads: u32, nKV: u32, D: u32, startPos: u32, window: u32, kvWidth: u32, q: u32, k: u32, v: u32, o: u32, scale: f32, noDiag: u32 }

var<workgroup> qv: array<f32, ${ATTENTION_MAX_HEAD_DIM}>;
${ONLINE_SOFTMAX_WGSL}
${KV_LOAD[kv]}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let h = wid.x;
  let t = wid.y;
  let tid = lid.x;
  let D = p.D;
  let kvh = h / (p.nHeads / p.nKV);
  let qo = p.q + (t * p.nHeads + h) * D;
  for (var d = tid; d < D; d += 64u) { qv[d] = ld_q(qo + d); }
  workgroupBarrier();

  // Keys [first, end); noDiag leaves out the row's own position (end may then equal first).
  let end = p.startPos + t + 1u - p.noDiag;
  var first = 0u;
  if (p.window > 0u && p.startPos + t + 1u > p.window) { first = p.startPos + t + 1u - p.window; }
  var m = -3.402823e38;
  var l = 0.0;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var j0 = first; j0 < end; j0 += 64u) {
    let j = j0 + tid;
    var s = -3.402823e38;
    if (j < end) {
      let ko = p.k + j * p.kvWidth + kvh * D;
      var dot = 0.0;
      for (var d = 0u; d < D; d++) { dot += qv[d] * kload(ko + d); }
      s = dot * p.scale;
    }
    let corr = online_softmax_block(s, j < end, tid, &m, &l);
    let count = min(64u, end - j0);
    for (var r = 0u; r < 4u; r++) {
      let d = tid + r * 64u;
      if (d < D) {
        var a = acc[r] * corr;
        for (var jj = 0u; jj < count; jj++) { a += pj[jj] * vload(p.v + (j0 + jj) * p.kvWidth + kvh * D + d); }
        acc[r] = a;
      }
    }
    workgroupBarrier();
  }
  let inv = select(0.0, 1.0 / l, l > 0.0);
  let oo = p.o + (t * p.nHeads + h) * D;
  for (var r = 0u; r < 4u; r++) {
    let d = tid + r * 64u;
    if (d < D) { st_out(oo + d, acc[r] * inv); }
  }
}
`;
