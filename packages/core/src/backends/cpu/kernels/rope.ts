import type { Tensor } from '../../../tensor/tensor.js';
import { f32Of } from '../cpu-backend.js';

let cos = new Float32Array(0);
let sin = new Float32Array(0);

/**
 * Rotary embedding in HF's rotate_half layout: element i pairs with i + headDim/2 in each head.
 * Rotated in place; the angle per (position, frequency) is computed once for all heads.
 */
export function rope(x: Tensor, nHeads: number, positions: Int32Array, invFreq: Float32Array): void {
  const half = invFreq.length;
  const headDim = half * 2;
  const width = nHeads * headDim;
  const xs = f32Of(x);
  if (cos.length < half) {
    cos = new Float32Array(half);
    sin = new Float32Array(half);
  }
  for (let t = 0; t < positions.length; t++) {
    for (let i = 0; i < half; i++) {
      // f32 angle like the PyTorch reference (position * inv_freq computed in f32).
      const angle = Math.fround(positions[t] * invFreq[i]);
      cos[i] = Math.cos(angle);
      sin[i] = Math.sin(angle);
    }
    for (let h = 0; h < nHeads; h++) {
      const base = t * width + h * headDim;
      for (let i = 0; i < half; i++) {
        const a = xs[base + i];
        const b = xs[base + i + half];
        xs[base + i] = a * cos[i] - b * sin[i];
        xs[base + i + half] = b * cos[i] + a * sin[i];
      }
    }
  }
}
