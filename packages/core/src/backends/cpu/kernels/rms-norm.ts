import type { Tensor } from '../../../tensor/tensor.js';
import { f32Of } from '../cpu-backend.js';

/** out = x / sqrt(mean(x²) + eps) * weight, row by row (accumulated in f64 like PyTorch's f32 path within tolerance). */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number, out: Tensor): void {
  const dim = weight.size;
  const xs = f32Of(x);
  const ws = f32Of(weight);
  const ys = f32Of(out);
  for (let r = 0; r < x.size / dim; r++) {
    const o = r * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += xs[o + i] * xs[o + i];
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) ys[o + i] = xs[o + i] * inv * ws[i];
  }
}
