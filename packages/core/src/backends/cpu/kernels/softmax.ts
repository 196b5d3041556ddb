import type { Tensor } from '../../../tensor/tensor.js';
import { f32Of } from '../cpu-backend.js';

/** Numerically stable softmax over the last dimension. */
export function softmax(x: Tensor, out: Tensor): void {
  const n = x.shape[x.shape.length - 1];
  const xs = f32Of(x);
  const ys = f32Of(out);
  for (let r = 0; r < x.size / n; r++) {
    const o = r * n;
    let max = -Infinity;
    for (let i = 0; i < n; i++) if (xs[o + i] > max) max = xs[o + i];
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const e = Math.exp(xs[o + i] - max);
      ys[o + i] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let i = 0; i < n; i++) ys[o + i] *= inv;
  }
}
