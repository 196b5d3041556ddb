/**
 * The AutoGPTQ / transformers GPTQ layout, read and written. For a linear `P` (e.g.
 * `model.layers.0.self_attn.q_proj`), with G groups (per-channel: 1):
 *
 * | tensor | dtype, shape | what |
 * |---|---|---|
 * | `P.qweight` | I32 [in · bits / 32, out] | codes packed along the input: column o is a little-endian bit stream of row o's codes (3 bits cross words) |
 * | `P.qzeros` | I32 [G, out · bits / 32] | zero points packed along the output the same way, stored minus 1 (AutoGPTQ's offset; `gptq_v2` stores them as they are) |
 * | `P.scales` | F16 [G, out] | group scales |
 * | `P.g_idx` | I32 [in] | group of each input column (act-order permutes them) |
 *
 * `config.json` carries `quantization_config: { quant_method: "gptq", bits, group_size, desc_act,
 * sym, ... }` and `quantize_config.json` the same fields. Loading repacks into core's grouped int
 * format (transposes, and with act-order sorts the columns by group once): quant/grouped-int.ts.
 */
import { f32ToF16, packGroupedCodes, permutationFromGroupIndex, wordsPerRow, type GroupedIntBits, type GroupedIntData } from '@lithe/core';
import type { QuantizedLinear } from './gptq.js';

export interface AutoGptqTensors {
  qweight: Int32Array;
  qzeros: Int32Array;
  scales: Uint16Array;
  gIdx: Int32Array;
}

/** 'gptq' (AutoGPTQ's zeros − 1) or 'gptq_v2' (zeros stored as they are). */
export type CheckpointFormat = 'gptq' | 'gptq_v2';

const SUFFIXES = ['qweight', 'qzeros', 'scales', 'g_idx'] as const;
export const GPTQ_SUFFIXES: readonly string[] = SUFFIXES;

function checkPackable(outF: number, inF: number, what: string): void {
  if (inF % 32 !== 0 || outF % 32 !== 0) throw new Error(`${what}: the AutoGPTQ layout packs 32 values per group of words, so in and out must be multiples of 32 (this layer is [${outF}, ${inF}])`);
}

/** Bit stream of codes [rows, cols] packed per row, transposed to [words, rows] when `transpose`. */
function packRows(values: ArrayLike<number>, rows: number, cols: number, bits: number, transpose: boolean): Int32Array {
  const packed = packGroupedCodes(values, rows, cols, bits);
  const wpr = wordsPerRow(cols, bits);
  if (!transpose) return new Int32Array(packed.buffer);
  const out = new Int32Array(wpr * rows);
  for (let r = 0; r < rows; r++) for (let w = 0; w < wpr; w++) out[w * rows + r] = packed[r * wpr + w];
  return out;
}

/** Packs a quantized weight as AutoGPTQ's `QuantLinear.pack()` does. */
export function toAutoGptq(q: QuantizedLinear, format: CheckpointFormat = 'gptq', what = 'gptq'): AutoGptqTensors {
  const { outFeatures: outF, inFeatures: inF, bits } = q;
  checkPackable(outF, inF, what);
  const groups = q.scales.length / outF;
  const mask = (1 << bits) - 1;
  // Masked before packing, so a zero point of 0 stored as −1 cannot spill into its neighbours.
  const zeros = format === 'gptq' ? q.zeros.map((z) => (z - 1) & mask) : q.zeros;
  return {
    qweight: packRows(q.codes, outF, inF, bits, true),
    qzeros: packRows(zeros, groups, outF, bits, false),
    scales: Uint16Array.from(q.scales, (s) => f32ToF16(s)),
    gIdx: q.gIdx.slice(),
  };
}

/** Code k of the bit stream that starts at word `base` and steps `stride` words. */
function streamCode(words: Int32Array, base: number, stride: number, k: number, bits: number): number {
  const bit = k * bits;
  const w = bit >>> 5, s = bit & 31;
  let v = words[base + w * stride] >>> s;
  if (s + bits > 32) v |= words[base + (w + 1) * stride] << (32 - s);
  return v & ((1 << bits) - 1);
}

export interface ReadOptions {
  format?: CheckpointFormat;
  /** quantization_config's group_size (-1: per-channel); without it, in / (rows of scales). */
  groupSize?: number;
  /** Names the layer in errors. */
  what?: string;
}

/**
 * Repacks AutoGPTQ tensors into core's grouped int format. `bits` follows from the shapes
 * (qweight has in · bits / 32 rows).
 */
export function fromAutoGptq(t: AutoGptqTensors, outF: number, inF: number, options: ReadOptions = {}): GroupedIntData {
  const { format = 'gptq', what = 'gptq' } = options;
  const bits = (t.qweight.length / outF / inF) * 32;
  if (![2, 3, 4, 8].includes(bits)) throw new Error(`${what}: qweight has ${t.qweight.length / outF} rows for ${inF} inputs, which is not 2, 3, 4 or 8 bits (rows = in · bits / 32)`);
  const groups = t.scales.length / outF;
  if (!Number.isInteger(groups) || groups < 1) throw new Error(`${what}: scales has ${t.scales.length} values, not a whole number of rows of ${outF}`);
  const groupSize = options.groupSize === undefined ? Math.ceil(inF / groups) : options.groupSize === -1 ? inF : options.groupSize;
  if (Math.ceil(inF / groupSize) !== groups) throw new Error(`${what}: scales has ${groups} rows, but ${inF} inputs in groups of ${groupSize} make ${Math.ceil(inF / groupSize)}; check group_size in quantization_config`);
  if (t.qzeros.length !== (groups * outF * bits) / 32) throw new Error(`${what}: qzeros has ${t.qzeros.length} values, expected ${groups} × ${(outF * bits) / 32}`);
  const gIdx = t.gIdx.length ? t.gIdx : Int32Array.from({ length: inF }, (_, i) => Math.floor(i / groupSize));
  if (gIdx.length !== inF) throw new Error(`${what}: g_idx has ${gIdx.length} entries for ${inF} inputs`);
  const perm = permutationFromGroupIndex(gIdx, groupSize, `${what}.g_idx`);
  const offset = format === 'gptq' ? 1 : 0;
  const mask = (1 << bits) - 1;
  const zeros = new Uint8Array(outF * groups);
  const scales = new Uint16Array(outF * groups);
  for (let g = 0; g < groups; g++) {
    const rowWords = (outF * bits) / 32;
    for (let o = 0; o < outF; o++) {
      zeros[o * groups + g] = (streamCode(t.qzeros, g * rowWords, 1, o, bits) + offset) & mask;
      scales[o * groups + g] = t.scales[g * outF + o];
    }
  }
  const wpr = wordsPerRow(inF, bits);
  let codes: Uint32Array;
  if (!perm) {
    // Column o of qweight is already row o's bit stream: a transpose.
    codes = new Uint32Array(outF * wpr);
    for (let o = 0; o < outF; o++) for (let w = 0; w < wpr; w++) codes[o * wpr + w] = t.qweight[w * outF + o];
  } else {
    const sorted = new Uint8Array(outF * inF);
    for (let o = 0; o < outF; o++) for (let j = 0; j < inF; j++) sorted[o * inF + j] = streamCode(t.qweight, o, outF, perm[j], bits);
    codes = packGroupedCodes(sorted, outF, inF, bits);
  }
  return { bits: bits as GroupedIntBits, outFeatures: outF, inFeatures: inF, groupSize, codes, scales, zeros, perm };
}

/** Core's grouped int format straight from a quantization result (no checkpoint in between). */
export function toGroupedInt(q: QuantizedLinear): GroupedIntData {
  const { outFeatures: outF, inFeatures: inF, bits, groupSize } = q;
  const groups = q.scales.length / outF;
  const perm = permutationFromGroupIndex(q.gIdx, groupSize, 'gptq g_idx');
  const sorted = new Uint8Array(outF * inF);
  for (let o = 0; o < outF; o++) for (let j = 0; j < inF; j++) sorted[o * inF + j] = q.codes[o * inF + (perm ? perm[j] : j)];
  const scales = new Uint16Array(outF * groups);
  const zeros = new Uint8Array(outF * groups);
  for (let g = 0; g < groups; g++) {
    for (let o = 0; o < outF; o++) {
      scales[o * groups + g] = f32ToF16(q.scales[g * outF + o]);
      zeros[o * groups + g] = q.zeros[g * outF + o];
    }
  }
  return { bits, outFeatures: outF, inFeatures: inF, groupSize, codes: packGroupedCodes(sorted, outF, inF, bits), scales, zeros, perm };
}

/** The names of a quantized linear's tensors, given its prefix (the HF weight name without `.weight`). */
export const gptqTensorNames = (prefix: string) => Object.fromEntries(SUFFIXES.map((s) => [s, `${prefix}.${s}`])) as Record<(typeof SUFFIXES)[number], string>;
