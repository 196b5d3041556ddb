/**
 * The 4-bit codebooks of bitsandbytes and its 8-bit "dynamic" map (used to double-quantize the
 * block absmax). Values are the float32 numbers bitsandbytes stores; a 4-bit code is an index into
 * its codebook.
 */

export type FourBitType = 'nf4' | 'fp4';

/** NormalFloat4 (QLoRA, Dettmers et al. 2023): quantiles of N(0, 1) scaled to [-1, 1]; code i is the i-th value. */
export const NF4_CODEBOOK: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/**
 * FP4 (1 sign, 2 exponent, 1 mantissa bit, bias 3) as bitsandbytes lays it out: bit 3 is the sign,
 * bits 0-2 index the magnitudes [0, 0.0625, 8, 12, 4, 6, 2, 3], all divided by 12.
 */
export const FP4_CODEBOOK: Float32Array = Float32Array.from([0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3], (v) => v / 12);

export function codebook(type: FourBitType): Float32Array {
  if (type === 'nf4') return NF4_CODEBOOK;
  if (type === 'fp4') return FP4_CODEBOOK;
  throw new Error(`nf4: unknown 4-bit type '${String(type)}'; use 'nf4' or 'fp4'`);
}

/**
 * A nearest-value quantizer over a codebook, written as bitsandbytes' decision trees are: x goes to
 * the upper neighbour only when it is strictly above the float32 midpoint, so a tie goes down.
 * FP4 quantizes the magnitude and sets the sign bit for x < 0 (so tiny negatives become -0).
 */
export interface Quantizer {
  (x: number): number;
}

function midpoints(sorted: number[]): Float32Array {
  return Float32Array.from(sorted.slice(1), (v, i) => (sorted[i] + v) / 2);
}

/** Index of the first threshold that x does not exceed: the number of thresholds below x. */
function rank(t: Float32Array, x: number): number {
  let lo = 0;
  let hi = t.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x > t[mid]) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const NF4_THRESHOLDS = midpoints(Array.from(NF4_CODEBOOK));
// FP4 magnitudes in increasing order, and the code (bits 0-2) of each.
const FP4_MAG_CODES = [0, 1, 6, 7, 4, 5, 2, 3];
const FP4_THRESHOLDS = midpoints(FP4_MAG_CODES.map((c) => FP4_CODEBOOK[c]));

export const quantizeNF4: Quantizer = (x) => rank(NF4_THRESHOLDS, x);
export const quantizeFP4: Quantizer = (x) => FP4_MAG_CODES[rank(FP4_THRESHOLDS, Math.abs(x))] | (x < 0 ? 8 : 0);

export function quantizer(type: FourBitType): Quantizer {
  codebook(type); // validates the name
  return type === 'nf4' ? quantizeNF4 : quantizeFP4;
}

/** Half the largest gap between neighbouring codebook values: the worst rounding error on [-1, 1]. */
export function halfMaxGap(values: ArrayLike<number>): number {
  const s = Array.from(values).sort((a, b) => a - b);
  let g = 0;
  for (let i = 1; i < s.length; i++) g = Math.max(g, s[i] - s[i - 1]);
  return g / 2;
}

const f = Math.fround;

/** torch.linspace in float32 (the first half counts up from start, the second down from end). */
function linspaceF32(start: number, end: number, steps: number): number[] {
  const step = f((end - start) / (steps - 1));
  const half = Math.floor(steps / 2);
  return Array.from({ length: steps }, (_, i) => (i < half ? f(f(start) + f(step * i)) : f(f(end) - f(step * (steps - i - 1)))));
}

/**
 * bitsandbytes `create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)`: for each
 * decade 10^-6 .. 10^0, the midpoints of 2^i equal steps over [0.1, 1] scaled to that decade, with
 * both signs; then 0 and 1; 256 values sorted ascending. (It has +1 but not -1: the smallest value
 * is -0.99296875.)
 */
export function createDynamicMap(signed = true, maxExponentBits = 7, totalBits = 8): Float32Array {
  const data: number[] = [];
  const nonSignBits = totalBits - 1;
  const additional = 2 ** (nonSignBits - maxExponentBits) - 1;
  const push = (scale: number, items: number) => {
    const b = linspaceF32(0.1, 1, items);
    for (let k = 0; k + 1 < b.length; k++) {
      const mean = f(f(b[k] + b[k + 1]) / 2);
      data.push(f(f(scale) * mean));
      if (signed) data.push(f(-f(scale) * mean));
    }
  };
  let i = 0;
  for (; i < maxExponentBits; i++) {
    const items = signed ? 2 ** (i + nonSignBits - maxExponentBits) + 1 : 2 ** (i + nonSignBits - maxExponentBits + 1) + 1;
    push(10 ** (-(maxExponentBits - 1) + i), items);
  }
  if (additional > 0) push(10 ** (-(maxExponentBits - 1) + i - 1), additional + 1);
  data.push(0, 1);
  while (data.length < 2 ** totalBits) data.push(0);
  if (data.length !== 2 ** totalBits) throw new Error(`dynamic map: ${data.length} values for ${totalBits} bits`);
  return Float32Array.from(data.sort((a, b) => a - b));
}

/** The map double quantization uses for the absmax constants. */
export const DYNAMIC_MAP: Float32Array = createDynamicMap();

/** Nearest entry of a sorted 256-value map (a tie goes to the lower entry). */
export function quantizeToMap(map: Float32Array, x: number): number {
  let lo = 0;
  let hi = map.length - 1;
  if (x <= map[lo]) return lo;
  if (x >= map[hi]) return hi;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (map[mid] <= x) lo = mid;
    else hi = mid;
  }
  return x - map[lo] <= map[hi] - x ? lo : hi;
}
