import type { Tensor } from '../../../tensor/tensor.js';
import { f32Of, i32Of } from '../cpu-backend.js';

/** Index of the largest value in each row (the first one on ties); -1 for a row holding a NaN. */
export function argmax(x: Tensor, out: Tensor): void {
  const n = x.shape[x.shape.length - 1];
  const xs = f32Of(x);
  const ys = i32Of(out);
  for (let r = 0; r < x.size / n; r++) {
    const o = r * n;
    let best = 0;
    let nan = xs[o] !== xs[o];
    for (let i = 1; i < n; i++) {
      const v = xs[o + i];
      if (v > xs[o + best]) best = i;
      else if (v !== v) nan = true;
    }
    ys[r] = nan ? -1 : best;
  }
}
