/**
 * Grouped integer weights: the one kernel format GPTQ and AWQ checkpoints repack into at load.
 *
 * A weight W [out, in] is stored row by row. Row o is a little-endian bit stream of `in` codes of
 * `bits` bits (2, 3, 4 or 8) in u32 words (element j at bits j·bits .. j·bits + bits − 1 of the
 * row, so a 4-bit word holds 8 codes, element 8w + k in bits 4k .. 4k + 3; a 3-bit code may cross
 * a word). Columns form groups of `groupSize` (per-channel: groupSize = in); each (row, group)
 * has an f16 scale and an integer zero point:
 *
 *   W[o, perm[j]] = scale[o, g] · (code[o, j] − zero[o, g]),   g = floor(j / groupSize)
 *
 * `perm` (act-order, GPTQ's desc_act) is the input column each stored column holds, or null for
 * the identity: a checkpoint's g_idx is turned into it once at load (columns sorted by group), and
 * the kernels gather x through it, so no dequantized or reordered copy of the matrix exists.
 */
import { f16ToF32 } from '../tensor/half.js';

export type GroupedIntBits = 2 | 3 | 4 | 8;
export const GROUPED_INT_BITS: readonly GroupedIntBits[] = [2, 3, 4, 8];

/** The host-side arrays of a grouped integer weight (what a checkpoint reader produces). */
export interface GroupedIntData {
  bits: GroupedIntBits;
  outFeatures: number;
  inFeatures: number;
  groupSize: number;
  /** u32 [out · wordsPerRow]: the packed codes, row-major. */
  codes: Uint32Array;
  /** f16 bits [out · groups]. */
  scales: Uint16Array;
  /** [out · groups]: zero points in 0 .. 2^bits − 1. */
  zeros: Uint8Array;
  /** i32 [in]: input column of each stored column, or null for the identity. */
  perm: Int32Array | null;
}

export const groupCount = (inFeatures: number, groupSize: number): number => Math.ceil(inFeatures / groupSize);
export const wordsPerRow = (inFeatures: number, bits: number): number => Math.ceil((inFeatures * bits) / 32);

export function checkGroupedIntBits(bits: number, what = 'grouped int weights'): asserts bits is GroupedIntBits {
  if (!GROUPED_INT_BITS.includes(bits as GroupedIntBits)) throw new Error(`${what}: bits must be one of ${GROUPED_INT_BITS.join(', ')}, got ${bits}`);
}

/** Checks the arrays' lengths and value ranges against the shape; a sentence naming what is wrong. */
export function checkGroupedIntData(d: GroupedIntData, what = 'grouped int weights'): void {
  checkGroupedIntBits(d.bits, what);
  const { outFeatures: outF, inFeatures: inF, groupSize } = d;
  if (!(outF > 0 && inF > 0 && Number.isInteger(outF) && Number.isInteger(inF))) throw new Error(`${what}: shape [${outF}, ${inF}] is not a positive integer shape`);
  if (!(Number.isInteger(groupSize) && groupSize > 0)) throw new Error(`${what}: group size ${groupSize} must be a positive integer (the input size ${inF} for per-channel)`);
  const groups = groupCount(inF, groupSize);
  const expect = (name: string, got: number, want: number) => {
    if (got !== want) throw new Error(`${what}: ${name} has ${got} entries, expected ${want} for a [${outF}, ${inF}] weight, ${d.bits} bits, group size ${groupSize}`);
  };
  expect('codes', d.codes.length, outF * wordsPerRow(inF, d.bits));
  expect('scales', d.scales.length, outF * groups);
  expect('zeros', d.zeros.length, outF * groups);
  const maxq = (1 << d.bits) - 1;
  for (let i = 0; i < d.zeros.length; i++) if (d.zeros[i] > maxq) throw new Error(`${what}: zero point ${d.zeros[i]} does not fit ${d.bits} bits`);
  if (d.perm) {
    expect('perm', d.perm.length, inF);
    const seen = new Uint8Array(inF);
    for (const p of d.perm) {
      if (!(p >= 0 && p < inF) || seen[p]) throw new Error(`${what}: perm is not a permutation of 0 .. ${inF - 1}`);
      seen[p] = 1;
    }
  }
}

/** Packs codes [out, in] (row-major, each < 2^bits) into the row bit streams. */
export function packGroupedCodes(codes: ArrayLike<number>, outF: number, inF: number, bits: number): Uint32Array {
  const wpr = wordsPerRow(inF, bits);
  const out = new Uint32Array(outF * wpr);
  for (let o = 0; o < outF; o++) {
    const base = o * wpr * 32;
    for (let j = 0; j < inF; j++) {
      const v = codes[o * inF + j];
      const bit = base + j * bits;
      const w = bit >>> 5, s = bit & 31;
      out[w] |= v << s;
      if (s + bits > 32) out[w + 1] |= v >>> (32 - s);
    }
  }
  return out;
}

/** Code of stored element (o, j). */
export function groupedCode(codes: Uint32Array, wpr: number, bits: number, o: number, j: number): number {
  const bit = j * bits;
  const w = o * wpr + (bit >>> 5), s = bit & 31;
  const mask = (1 << bits) - 1;
  let v = codes[w] >>> s;
  if (s + bits > 32) v |= codes[w + 1] << (32 - s);
  return v & mask;
}

/** The f32 matrix [out, in] in input order (for tests and conversions; never at inference). */
export function dequantizeGroupedInt(d: GroupedIntData): Float32Array {
  const { outFeatures: outF, inFeatures: inF, groupSize, bits } = d;
  const wpr = wordsPerRow(inF, bits);
  const groups = groupCount(inF, groupSize);
  const out = new Float32Array(outF * inF);
  for (let o = 0; o < outF; o++) {
    for (let j = 0; j < inF; j++) {
      const g = Math.floor(j / groupSize);
      const s = f16ToF32(d.scales[o * groups + g]);
      const col = d.perm ? d.perm[j] : j;
      out[o * inF + col] = Math.fround(s * (groupedCode(d.codes, wpr, bits, o, j) - d.zeros[o * groups + g]));
    }
  }
  return out;
}

/**
 * The permutation a GPTQ g_idx implies (stored column j holds input perm[j], columns sorted by
 * group, stable), or null when g_idx is already in order. Each group must hold `groupSize` columns
 * (the last one fewer), as GPTQ's act-order writes them.
 */
export function permutationFromGroupIndex(gIdx: Int32Array, groupSize: number, what = 'g_idx'): Int32Array | null {
  const inF = gIdx.length;
  const groups = groupCount(inF, groupSize);
  const count = new Int32Array(groups);
  let ordered = true;
  for (let i = 0; i < inF; i++) {
    const g = gIdx[i];
    if (!(g >= 0 && g < groups)) throw new Error(`${what}: entry ${i} is group ${g}; ${inF} columns in groups of ${groupSize} have groups 0 .. ${groups - 1}`);
    count[g]++;
    if (g !== Math.floor(i / groupSize)) ordered = false;
  }
  if (ordered) return null;
  for (let g = 0; g < groups; g++) {
    const want = Math.min(groupSize, inF - g * groupSize);
    if (count[g] !== want) throw new Error(`${what}: group ${g} has ${count[g]} columns, expected ${want}; only g_idx with full groups (GPTQ's act-order) can be repacked`);
  }
  const next = new Int32Array(groups);
  for (let g = 0; g < groups; g++) next[g] = g * groupSize;
  const perm = new Int32Array(inF);
  for (let i = 0; i < inF; i++) perm[next[gIdx[i]]++] = i;
  return perm;
}

/** Bytes of the packed form: codes, scales, zeros (one byte each), permutation. */
export function groupedIntBytes(d: GroupedIntData): number {
  return d.codes.byteLength + d.scales.byteLength + d.zeros.byteLength + (d.perm?.byteLength ?? 0);
}
