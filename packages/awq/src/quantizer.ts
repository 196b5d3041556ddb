/**
 * AutoAWQ's group quantizer (`pseudo_quantize_tensor`, 4 bits, zero point): per output row and
 * group of `groupSize` inputs, from the group's range (not forced to include 0, unlike GPTQ's),
 *
 *   scale = max(max − min, 1e-5) / 15,   zero = clamp(−round(min / scale), 0, 15),
 *   code  = clamp(round(w / scale) + zero, 0, 15),   w ≈ scale · (code − zero).
 *
 * The scale is rounded to f16 before any code is chosen: the checkpoint and the kernels hold f16
 * scales, so the search below scores the weights the model will really use. An optional per-group
 * clip (AWQ's clip search) first clamps the group to ±clip.
 */
import { f16ToF32, f32ToF16 } from '@lithe/core';

export const AWQ_BITS = 4;
const MAXQ = 15;

/** A quantized weight in AutoAWQ's terms, rows of the weight [out, in]. */
export interface AwqQuantized {
  outFeatures: number;
  inFeatures: number;
  groupSize: number;
  /** [out, in] codes 0..15. */
  codes: Uint8Array;
  /** [out, groups] zero points. */
  zeros: Uint8Array;
  /** [out, groups] f16 bits. */
  scales: Uint16Array;
}

export function checkGroupSize(groupSize: number, inF: number, what: string): void {
  if (!(Number.isInteger(groupSize) && groupSize > 0)) throw new RangeError(`awq: group size must be a positive integer (32, 64, 128), got ${groupSize}`);
  if (inF % groupSize !== 0) throw new RangeError(`awq: group size ${groupSize} does not divide the ${inF} inputs of ${what}; pick a group size that divides every linear's input width`);
}

/** round-half-to-even, torch.round's rule, so ties agree with AutoAWQ. */
function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Quantizes one group w[from, from + n) (optionally clamped to ±clip) and writes the codes into
 * `codes` at the same offsets (when given) and the dequantized values into `deq` (when given).
 * Returns [scale f16 bits, zero].
 */
export function quantizeGroup(w: ArrayLike<number>, from: number, n: number, clip: number, codes: Uint8Array | null, deq: Float32Array | null): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (let i = from; i < from + n; i++) {
    const v = Math.max(-clip, Math.min(clip, w[i]));
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const half = f32ToF16(Math.max(max - min, 1e-5) / MAXQ);
  const scale = f16ToF32(half);
  const zero = Math.max(0, Math.min(MAXQ, -roundEven(min / scale)));
  for (let i = from; i < from + n; i++) {
    const v = Math.max(-clip, Math.min(clip, w[i]));
    const q = Math.max(0, Math.min(MAXQ, roundEven(v / scale) + zero));
    if (codes) codes[i] = q;
    if (deq) deq[i] = scale * (q - zero);
  }
  return [half, zero];
}

/** Quantizes a weight [out, in]; `clip` [out, groups] per-group clamps (null: none). */
export function awqQuantize(w: Float32Array, outF: number, inF: number, groupSize: number, clip: Float32Array | null = null): AwqQuantized {
  checkGroupSize(groupSize, inF, 'this weight');
  const groups = inF / groupSize;
  const codes = new Uint8Array(outF * inF);
  const zeros = new Uint8Array(outF * groups);
  const scales = new Uint16Array(outF * groups);
  for (let o = 0; o < outF; o++) {
    for (let g = 0; g < groups; g++) {
      const [s, z] = quantizeGroup(w, o * inF + g * groupSize, groupSize, clip ? clip[o * groups + g] : Infinity, codes, null);
      scales[o * groups + g] = s;
      zeros[o * groups + g] = z;
    }
  }
  return { outFeatures: outF, inFeatures: inF, groupSize, codes, zeros, scales };
}

/** W quantized and dequantized again (what the model computes with), [out, in]. */
export function fakeQuantize(w: Float32Array, outF: number, inF: number, groupSize: number): Float32Array {
  const out = new Float32Array(outF * inF);
  for (let r = 0; r < outF; r++) for (let g = 0; g < inF / groupSize; g++) quantizeGroup(w, r * inF + g * groupSize, groupSize, Infinity, null, out);
  return out;
}
