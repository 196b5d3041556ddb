import { f32Bits, gpuOf, ONLINE_SOFTMAX_WGSL, type AttentionParams, type KVCacheLayer, type Tensor } from '@lithe/core';
import type { KvQuantFormat } from '../format.js';
import { isQuantizedLayer } from '../quantized-kv-cache.js';

// WebGPU kernels of the quantized cache. Storage is the same bytes as on the CPU: codes (u8 / i8 /
// packed int4, little-endian, so element e of a row sits at bits 8e (int8) or 4e (int4) of its 32-bit
// word) and f16 parameters, two per 32-bit word, read and written with (un)pack2x16float.

export const WEBGPU_MAX_HEAD_DIM = 256;

/** WGSL that reads code `e` (0-based within the row) of a row starting at word `w0`. */
const codeFn = (f: KvQuantFormat) => {
  const per = 32 / f.bits;
  const mask = f.bits === 8 ? '255u' : '15u';
  const body =
    f.mode === 'asymmetric'
      ? `return f32((w >> (${f.bits}u * (e % ${per}u))) & ${mask});`
      : `return f32(bitcast<i32>(w << (${32 - f.bits}u - ${f.bits}u * (e % ${per}u))) >> ${32 - f.bits}u);`;
  return `fn code_of(w: u32, e: u32) -> f32 { ${body} }`;
};

/** WGSL: the affine map [a, b] (x = c · a + b) of parameter slot `u` of a params tensor. */
const affineFn = (f: KvQuantFormat, name: 'kp' | 'vp') => `
fn affine_${name}(u: u32) -> vec2<f32> {
  let w = unpack2x16float(ld_${name}(u / 2u));
  ${
    f.mode === 'asymmetric'
      ? `let a = w.x; let z = w.y;\n  if (a == 0.0) { return vec2<f32>(0.0, z); }\n  return vec2<f32>(a, -z * a);`
      : `let a = select(w.x, w.y, (u & 1u) == 1u);\n  return vec2<f32>(a, 0.0);`
  }
}`;

// ---------------------------------------------------------------------------------------------
// Quantize on write: one workgroup per token, heads one after another.

const quantizeWgsl = (f: KvQuantFormat) => /* wgsl */ `
struct Params { T: u32, H: u32, D: u32, x: u32, c: u32, pw: u32, pos: u32 }

var<workgroup> lo: array<f32, 64>;
var<workgroup> hi: array<f32, 64>;
var<workgroup> prm: array<u32, ${2 * 64}>;

fn f16_bits(v: f32) -> u32 { return pack2x16float(vec2<f32>(v, 0.0)) & 0xffffu; }
fn f16_val(h: u32) -> f32 { return unpack2x16float(h).x; }
// The smallest f16 not below the positive v (pack2x16float's own rounding is not specified).
fn f16_up(v: f32) -> u32 {
  var h = f16_bits(v);
  if (h >= 0x7c00u) { return 0x7bffu; }
  if (f16_val(h) < v) { h += 1u; }
  return h;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = wid.y * nwg.x + wid.x;
  if (t >= p.T) { return; }
  let tid = lid.x;
  let D = p.D;
  let perWord = ${32 / f.bits}u;
  let rowWords = p.H * D / perWord;
  for (var h = 0u; h < p.H; h++) {
    let xo = p.x + (t * p.H + h) * D;
    var l = 3.402823e38;
    var u = -3.402823e38;
    for (var d = tid; d < D; d += 64u) {
      let v = ld_x(xo + d);
      ${f.mode === 'asymmetric' ? 'l = min(l, v); u = max(u, v);' : 'u = max(u, abs(v));'}
    }
    lo[tid] = l;
    hi[tid] = u;
    workgroupBarrier();
    for (var st = 32u; st > 0u; st >>= 1u) {
      if (tid < st) { lo[tid] = min(lo[tid], lo[tid + st]); hi[tid] = max(hi[tid], hi[tid + st]); }
      workgroupBarrier();
    }
    var mn = lo[0];
    var mx = hi[0];
    workgroupBarrier();
    var sh = 0u;
    var zh = 0u;
    var s = 0.0;
    var z = 0.0;
    ${
      f.mode === 'asymmetric'
        ? `if (mx > mn) {
      sh = f16_up((mx - mn) / ${f.qmax}.0);
      var zero = -mn / f16_val(sh);
      if (abs(zero) > 1024.0) {
        mn = min(mn, 0.0);
        mx = max(mx, 0.0);
        sh = f16_up((mx - mn) / ${f.qmax}.0);
        zero = -mn / f16_val(sh);
      }
      zh = f16_bits(zero);
      s = f16_val(sh);
      z = f16_val(zh);
    } else {
      zh = f16_bits(mn);
    }`
        : `if (mx > 0.0) {
      sh = f16_up(mx / ${f.qmax}.0);
      s = f16_val(sh);
    }`
    }
    if (tid == 0u) { prm[2u * h] = sh; prm[2u * h + 1u] = zh; }
    let inv = select(0.0, 1.0 / s, s > 0.0);
    let wordsPerHead = D / perWord;
    for (var wi = tid; wi < wordsPerHead; wi += 64u) {
      var word = 0u;
      for (var k = 0u; k < perWord; k++) {
        let v = ld_x(xo + wi * perWord + k);
        ${
          f.mode === 'asymmetric'
            ? `let q = u32(clamp(floor(v * inv + z + 0.5), 0.0, ${f.qmax}.0));`
            : `let q = u32(bitcast<u32>(i32(clamp(floor(v * inv + 0.5), -${f.qmax}.0, ${f.qmax}.0))));`
        }
        word |= (q & ${f.bits === 8 ? '255u' : '15u'}) << (${f.bits}u * k);
      }
      st_codes(p.c + (p.pos + t) * rowWords + h * wordsPerHead + wi, word);
    }
  }
  workgroupBarrier();
  // Parameter words: ${f.paramsPerHead === 2 ? 'scale and zero of one head' : 'the scales of two heads'} per word.
  let words = p.H * ${f.paramsPerHead}u / 2u;
  for (var wi = tid; wi < words; wi += 64u) {
    ${
      f.paramsPerHead === 2
        ? 'let word = prm[2u * wi] | (prm[2u * wi + 1u] << 16u);'
        : 'let word = prm[4u * wi] | (prm[4u * wi + 2u] << 16u);'
    }
    st_pw(p.pw + (p.pos + t) * words + wi, word);
  }
}
`;

function wordOffset(units: number, unitBytes: number, what: string): number {
  const bytes = units * unitBytes;
  if (bytes % 4 !== 0) throw new Error(`kv-quant (webgpu): ${what} does not start on a 4-byte boundary`);
  return bytes / 4;
}

/** Quantizes keys or values [T, H * D] (f32) into rows [pos, pos + T) of a layer's codes and params. */
export function quantizeWebGpu(format: KvQuantFormat, x: Tensor, codes: Tensor, params: Tensor, pos: number, nKVHeads: number, headDim: number): void {
  const gpu = gpuOf(codes);
  const T = x.size / (nKVHeads * headDim);
  const sx = gpu.at(x);
  const sc = gpu.at(codes);
  const sp = gpu.at(params);
  const groups = T <= 65535 ? [T, 1] : [Math.ceil(T / Math.ceil(T / 65535)), Math.ceil(T / 65535)];
  gpu.dispatch({
    key: `kv-quant:write:${format.kind}`,
    code: () => quantizeWgsl(format),
    bindings: [
      { name: 'x', buf: sx.buf, type: 'f32' },
      { name: 'codes', buf: sc.buf, type: 'u32', write: true },
      { name: 'pw', buf: sp.buf, type: 'u32', write: true },
    ],
    params: [T, nKVHeads, headDim, sx.offset, wordOffset(sc.offset, 1, 'the codes'), wordOffset(sp.offset, 2, 'the parameters'), pos],
    workgroups: groups as [number, number],
  });
}

// ---------------------------------------------------------------------------------------------
// Attention: core's WebGPU dense kernel (one workgroup per head and query row, keys 64 at a time,
// online softmax) with codes and per-row affine maps in place of f32 keys and values.

const attentionWgsl = (f: KvQuantFormat) => /* wgsl */ `
struct Params { rows: u32, nHeads: u32, nKV: u32, D: u32, startPos: u32, window: u32, q: u32, kc: u32, vc: u32, kp: u32, vp: u32, o: u32, scale: f32, noDiag: u32 }

var<workgroup> qv: array<f32, ${WEBGPU_MAX_HEAD_DIM}>;
var<workgroup> va: array<f32, 64>;
var<workgroup> vb: array<f32, 64>;
${ONLINE_SOFTMAX_WGSL}

${codeFn(f)}
${affineFn(f, 'kp')}
${affineFn(f, 'vp')}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let h = wid.x;
  let t = wid.y;
  let tid = lid.x;
  let D = p.D;
  let kvh = h / (p.nHeads / p.nKV);
  let perWord = ${32 / f.bits}u;
  let headWords = D / perWord;
  let rowWords = p.nKV * headWords;
  let qo = p.q + (t * p.nHeads + h) * D;
  for (var d = tid; d < D; d += 64u) { qv[d] = ld_q(qo + d); }
  workgroupBarrier();
  var qsum = 0.0;
  for (var d = 0u; d < D; d++) { qsum += qv[d]; }

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
      let k0 = p.kc + j * rowWords + kvh * headWords;
      var dot = 0.0;
      for (var wi = 0u; wi < headWords; wi++) {
        let w = ld_kc(k0 + wi);
        for (var k = 0u; k < perWord; k++) { dot += qv[wi * perWord + k] * code_of(w, k); }
      }
      let ab = affine_kp(p.kp + (j * p.nKV + kvh) * ${f.paramsPerHead}u);
      s = (ab.x * dot + ab.y * qsum) * p.scale;
      let vab = affine_vp(p.vp + (j * p.nKV + kvh) * ${f.paramsPerHead}u);
      va[tid] = vab.x;
      vb[tid] = vab.y;
    }
    let corr = online_softmax_block(s, j < end, tid, &m, &l);
    let count = min(64u, end - j0);
    for (var r = 0u; r < 4u; r++) {
      let d = tid + r * 64u;
      if (d < D) {
        var a = acc[r] * corr;
        for (var jj = 0u; jj < count; jj++) {
          let w = ld_vc(p.vc + (j0 + jj) * rowWords + kvh * headWords + d / perWord);
          a += pj[jj] * (va[jj] * code_of(w, d % perWord) + vb[jj]);
        }
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

/** Causal GQA attention over a quantized cache layer on WebGPU (semantics of core's dense kernel). */
export function attentionQuantizedWebGpu(q: Tensor, cache: KVCacheLayer, p: AttentionParams, out: Tensor): void {
  if (!isQuantizedLayer(cache)) throw new Error(`quantized attention needs a kv-quant cache layer, got kind '${cache.kind}'`);
  const gpu = gpuOf(out);
  const { nHeads, nKVHeads, headDim: D, startPos } = p;
  if (D > WEBGPU_MAX_HEAD_DIM) throw new Error(`kv-quant (webgpu): head dimensions up to ${WEBGPU_MAX_HEAD_DIM}, got ${D}`);
  const width = nHeads * D;
  const T = q.size / width;
  const diag = p.noDiagonal ? 1 : 0;
  if (startPos + T - diag > cache.length) throw new Error(`attention: cache holds ${cache.length} tokens, queries reach ${startPos + T - diag}`);
  const f = cache.format;
  const kc = gpu.at(cache.keyCodes);
  const vc = gpu.at(cache.valueCodes);
  const kp = gpu.at(cache.keyParams);
  const vp = gpu.at(cache.valueParams);
  for (const [t0, t1] of gpu.rowRuns(T, [
    [q, width],
    [out, width],
  ])) {
    const rows = t1 - t0;
    const sq = gpu.at(q, t0 * width, rows * width);
    const so = gpu.at(out, t0 * width, rows * width);
    gpu.dispatch({
      key: `kv-quant:attention:${f.kind}`,
      code: () => attentionWgsl(f),
      bindings: [
        { name: 'q', buf: sq.buf, type: 'f32' },
        { name: 'kc', buf: kc.buf, type: 'u32' },
        { name: 'vc', buf: vc.buf, type: 'u32' },
        { name: 'kp', buf: kp.buf, type: 'u32' },
        { name: 'vp', buf: vp.buf, type: 'u32' },
        { name: 'out', buf: so.buf, type: 'f32', write: true },
      ],
      params: [
        rows,
        nHeads,
        nKVHeads,
        D,
        startPos + t0,
        p.window ?? 0,
        sq.offset,
        wordOffset(kc.offset, 1, 'the key codes'),
        wordOffset(vc.offset, 1, 'the value codes'),
        // Parameter slots (f16 units), not words: the shader halves them.
        kp.offset,
        vp.offset,
        so.offset,
        f32Bits(p.scale),
        diag,
      ],
      workgroups: [nHeads, rows],
    });
  }
}
