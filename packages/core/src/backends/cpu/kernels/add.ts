import type { Tensor } from '../../../tensor/tensor.js';
import { f32Of } from '../cpu-backend.js';

export function add(a: Tensor, b: Tensor, out: Tensor): void {
  const x = f32Of(a);
  const y = f32Of(b);
  const o = f32Of(out);
  for (let i = 0; i < out.size; i++) o[i] = x[i] + y[i];
}
