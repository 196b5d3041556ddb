import { checkGroupedIntBits, type GroupedIntBits } from '@lithe/core';
import { upperCholeskyOfInverse } from './linalg.js';
import { findParams, quantizeCode, type GroupParams } from './quantizer.js';

export interface GptqOptions {
  /** 2, 3, 4 or 8. */
  bits: GroupedIntBits;
  /** Columns per scale and zero point: 32, 64, 128, ... or -1 for one per output row. */
  groupSize: number;
  /** desc_act: quantize columns in order of decreasing diag(H) (the most active inputs first). */
  actOrder?: boolean;
  /** Symmetric (zero point fixed at 2^(bits−1)) instead of asymmetric. */
  sym?: boolean;
  /** Dampening added to diag(H), as a fraction of its mean (AutoGPTQ's damp_percent, 0.01). */
  damp?: number;
  /** Columns per lazy batch update (128). */
  blockSize?: number;
}

/** A quantized weight, in the terms of AutoGPTQ's checkpoint (input column order). */
export interface QuantizedLinear {
  bits: GroupedIntBits;
  outFeatures: number;
  inFeatures: number;
  /** The effective group size (inFeatures for per-channel). */
  groupSize: number;
  /** [out · in], row-major in input order: codes in 0 .. 2^bits − 1. */
  codes: Uint8Array;
  /** [groups · out]: the f16-representable scale of each group and row. */
  scales: Float32Array;
  /** [groups · out]: integer zero points. */
  zeros: Uint8Array;
  /** [in]: the group of each input column. */
  gIdx: Int32Array;
  /** Σ (w − q)² / Hinv_ii² over the weight (GPTQ's loss; 0 for round-to-nearest). */
  loss: number;
}

export function checkGptqOptions(o: GptqOptions, inFeatures?: number): void {
  checkGroupedIntBits(o.bits, 'gptq');
  const g = o.groupSize;
  if (!(g === -1 || (Number.isSafeInteger(g) && g > 0))) throw new Error(`gptq: group size must be a positive integer (32, 64, 128) or -1 for per-channel, got ${g}`);
  if (o.damp !== undefined && !(o.damp >= 0 && o.damp < 1)) throw new Error(`gptq: damp must be in [0, 1), got ${o.damp}`);
  if (o.blockSize !== undefined && !(Number.isSafeInteger(o.blockSize) && o.blockSize > 0)) throw new Error(`gptq: blockSize must be a positive integer, got ${o.blockSize}`);
  if (inFeatures !== undefined && g > inFeatures) throw new Error(`gptq: group size ${g} exceeds the input size ${inFeatures}; use -1 for per-channel`);
}

/** Min and max of each row over columns [c0, c1) of the column-major [in, out] matrix. */
function rowRange(wt: Float64Array, outF: number, c0: number, c1: number, mn: Float64Array, mx: Float64Array): void {
  mn.fill(Infinity);
  mx.fill(-Infinity);
  for (let c = c0; c < c1; c++) {
    const col = c * outF;
    for (let r = 0; r < outF; r++) {
      const v = wt[col + r];
      if (v < mn[r]) mn[r] = v;
      if (v > mx[r]) mx[r] = v;
    }
  }
}

/**
 * GPTQ (Frantar et al. 2022) on one linear weight W [out, in] (row-major) with the Hessian
 * H = 2·XᵀX [in, in] of its calibration inputs, in f64 throughout:
 *
 * 1. dead inputs (H_ii = 0) get H_ii = 1 and W[:, i] = 0; with act-order, columns are permuted by
 *    decreasing diag(H);
 * 2. H += damp · mean(diag H) · I, and Hinv = the upper Cholesky factor of H⁻¹;
 * 3. columns are quantized in blocks of `blockSize`: each column's rounding error, divided by
 *    Hinv_ii, is fed back into the block's remaining columns through row i of Hinv, and after the
 *    block into every later column at once (the lazy batch update);
 * 4. a new group's scale and zero point are found when its first column comes up (from the
 *    columns as updated so far), so groups follow the processing order: with act-order, g_idx
 *    maps each input column to its group.
 */
export function gptqQuantize(weight: Float32Array | Float64Array, outF: number, inF: number, hessian: Float64Array, options: GptqOptions): QuantizedLinear {
  checkGptqOptions(options, inF);
  if (weight.length !== outF * inF) throw new Error(`gptq: a [${outF}, ${inF}] weight needs ${outF * inF} values, got ${weight.length}`);
  if (hessian.length !== inF * inF) throw new Error(`gptq: the Hessian of a ${inF}-input layer is ${inF} × ${inF}, got ${hessian.length} values`);
  const { bits, sym = false, actOrder = false } = options;
  const damp = options.damp ?? 0.01;
  const B = options.blockSize ?? 128;
  const G = options.groupSize === -1 ? inF : options.groupSize;
  const maxq = 2 ** bits - 1;
  const H = hessian.slice();

  const mn = new Float64Array(outF), mx = new Float64Array(outF);
  // W transposed (column-major [in, out]) so a column is contiguous.
  const wtOrig = new Float64Array(inF * outF);
  for (let r = 0; r < outF; r++) for (let c = 0; c < inF; c++) wtOrig[c * outF + r] = weight[r * inF + c];

  for (let i = 0; i < inF; i++) {
    if (H[i * inF + i] === 0) {
      H[i * inF + i] = 1;
      for (let r = 0; r < outF; r++) wtOrig[i * outF + r] = 0;
    }
  }
  let perm: Int32Array | null = null;
  if (actOrder) {
    perm = Int32Array.from({ length: inF }, (_, i) => i);
    // Stable descending sort by diag(H) (ties keep index order).
    perm.sort((a, b) => H[b * inF + b] - H[a * inF + a] || a - b);
  }
  // Working copies in processing order: wt column-major [in, out], h [in, in].
  const at = (j: number) => (perm ? perm[j] : j);
  const wt = new Float64Array(inF * outF);
  const h = new Float64Array(inF * inF);
  for (let j = 0; j < inF; j++) {
    wt.set(wtOrig.subarray(at(j) * outF, (at(j) + 1) * outF), j * outF);
    for (let k = 0; k < inF; k++) h[j * inF + k] = H[at(j) * inF + at(k)];
  }
  let mean = 0;
  for (let i = 0; i < inF; i++) mean += h[i * inF + i];
  mean /= inF;
  for (let i = 0; i < inF; i++) h[i * inF + i] += damp * mean;
  const hinv = upperCholeskyOfInverse(h, inF);
  if (!hinv) throw new Error(`gptq: the damped Hessian (${inF} inputs) is not positive definite; raise damp (now ${damp}) or give more calibration samples`);

  const groups = Math.ceil(inF / G);
  const scales = new Float32Array(groups * outF);
  const zeros = new Uint8Array(groups * outF);
  const codesT = new Uint8Array(inF * outF); // processing order, column-major
  const params: GroupParams = { scale: new Float64Array(outF), zero: new Float64Array(outF) };
  const err = new Float64Array(B * outF);
  let loss = 0;

  for (let i1 = 0; i1 < inF; i1 += B) {
    const i2 = Math.min(i1 + B, inF);
    for (let i = i1; i < i2; i++) {
      if (i % G === 0) {
        rowRange(wt, outF, i, Math.min(i + G, inF), mn, mx);
        findParams(mn, mx, maxq, sym, params);
        const g = i / G;
        for (let r = 0; r < outF; r++) {
          scales[g * outF + r] = params.scale[r];
          zeros[g * outF + r] = params.zero[r];
        }
      }
      const d = hinv[i * inF + i];
      const col = i * outF;
      const e = (i - i1) * outF;
      for (let r = 0; r < outF; r++) {
        const w = wt[col + r];
        const s = params.scale[r], z = params.zero[r];
        const q = quantizeCode(w, s, z, maxq);
        codesT[col + r] = q;
        const diff = w - s * (q - z);
        loss += (diff * diff) / (d * d);
        err[e + r] = diff / d;
      }
      // Error feedback into the rest of the block: W[:, j] -= err · Hinv[i, j].
      for (let j = i + 1; j < i2; j++) {
        const f = hinv[i * inF + j];
        if (f === 0) continue;
        const cj = j * outF;
        for (let r = 0; r < outF; r++) wt[cj + r] -= err[e + r] * f;
      }
    }
    // Lazy batch update of every later column: W[:, i2:] -= Err · Hinv[i1:i2, i2:].
    for (let j = i2; j < inF; j++) {
      const cj = j * outF;
      for (let i = i1; i < i2; i++) {
        const f = hinv[i * inF + j];
        if (f === 0) continue;
        const e = (i - i1) * outF;
        for (let r = 0; r < outF; r++) wt[cj + r] -= err[e + r] * f;
      }
    }
  }

  const codes = new Uint8Array(outF * inF);
  const gIdx = new Int32Array(inF);
  for (let j = 0; j < inF; j++) {
    const c = at(j);
    gIdx[c] = Math.floor(j / G);
    for (let r = 0; r < outF; r++) codes[r * inF + c] = codesT[j * outF + r];
  }
  return { bits, outFeatures: outF, inFeatures: inF, groupSize: G, codes, scales, zeros, gIdx, loss };
}

/** Round-to-nearest with the same quantizer and groups (the baseline GPTQ is measured against). */
export function rtnQuantize(weight: Float32Array | Float64Array, outF: number, inF: number, options: Pick<GptqOptions, 'bits' | 'groupSize' | 'sym'>): QuantizedLinear {
  checkGptqOptions({ ...options }, inF);
  const { bits, sym = false } = options;
  const G = options.groupSize === -1 ? inF : options.groupSize;
  const maxq = 2 ** bits - 1;
  const groups = Math.ceil(inF / G);
  const scales = new Float32Array(groups * outF);
  const zeros = new Uint8Array(groups * outF);
  const codes = new Uint8Array(outF * inF);
  const mn = new Float64Array(1), mx = new Float64Array(1);
  const p: GroupParams = { scale: new Float64Array(1), zero: new Float64Array(1) };
  for (let r = 0; r < outF; r++) {
    for (let g = 0; g < groups; g++) {
      const c0 = g * G, c1 = Math.min(inF, c0 + G);
      mn[0] = Infinity;
      mx[0] = -Infinity;
      for (let c = c0; c < c1; c++) {
        mn[0] = Math.min(mn[0], weight[r * inF + c]);
        mx[0] = Math.max(mx[0], weight[r * inF + c]);
      }
      findParams(mn, mx, maxq, sym, p);
      scales[g * outF + r] = p.scale[0];
      zeros[g * outF + r] = p.zero[0];
      for (let c = c0; c < c1; c++) codes[r * inF + c] = quantizeCode(weight[r * inF + c], p.scale[0], p.zero[0], maxq);
    }
  }
  const gIdx = Int32Array.from({ length: inF }, (_, i) => Math.floor(i / G));
  return { bits, outFeatures: outF, inFeatures: inF, groupSize: G, codes, scales, zeros, gIdx, loss: 0 };
}

/** The dequantized matrix [out, in] (tests and reports only). */
export function dequantizeLinear(q: QuantizedLinear): Float64Array {
  const { outFeatures: outF, inFeatures: inF } = q;
  const out = new Float64Array(outF * inF);
  for (let r = 0; r < outF; r++) {
    for (let c = 0; c < inF; c++) {
      const k = q.gIdx[c] * outF + r;
      out[r * inF + c] = q.scales[k] * (q.codes[r * inF + c] - q.zeros[k]);
    }
  }
  return out;
}
