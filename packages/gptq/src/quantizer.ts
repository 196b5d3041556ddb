import { f16ToF32, f32ToF16 } from '@lithe/core';

/**
 * AutoGPTQ's min-max quantizer for one group of a weight: per output row, a scale and an integer
 * zero point from the group's range (the range always includes 0).
 *
 * - asymmetric: scale = (max − min) / maxq, zero = round(−min / scale)
 * - symmetric: max = max(|min|, max), min = −max (when min < 0), zero = (maxq + 1) / 2
 *
 * q = clamp(round(w / scale) + zero, 0, maxq), and w ≈ scale · (q − zero). The scale is rounded to
 * f16 here, before any code is chosen, because that is what the checkpoint and the kernels hold:
 * GPTQ's error feedback then sees the weights the model will really use.
 */
export interface GroupParams {
  scale: Float64Array;
  zero: Float64Array;
}

export function findParams(rowsMin: Float64Array, rowsMax: Float64Array, maxq: number, sym: boolean, into?: GroupParams): GroupParams {
  const n = rowsMin.length;
  const p = into ?? { scale: new Float64Array(n), zero: new Float64Array(n) };
  for (let r = 0; r < n; r++) {
    let xmin = Math.min(rowsMin[r], 0);
    let xmax = Math.max(rowsMax[r], 0);
    if (sym) {
      xmax = Math.max(Math.abs(xmin), xmax);
      if (xmin < 0) xmin = -xmax;
    }
    if (xmin === 0 && xmax === 0) {
      xmin = -1;
      xmax = 1;
    }
    const scale = f16ToF32(f32ToF16((xmax - xmin) / maxq));
    p.scale[r] = scale;
    p.zero[r] = sym ? (maxq + 1) / 2 : Math.round(-xmin / scale);
  }
  return p;
}

/** Round half away from zero is torch.round's half-to-even: match it so ties agree with the reference. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The integer code of w. */
export function quantizeCode(w: number, scale: number, zero: number, maxq: number): number {
  const q = roundHalfEven(w / scale) + zero;
  return q < 0 ? 0 : q > maxq ? maxq : q;
}
