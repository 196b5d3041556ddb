import type { Tensor } from '../../../tensor/tensor.js';
import { f32Of } from '../cpu-backend.js';

/** out = silu(gate) * up, silu(x) = x / (1 + e^-x). */
export function swiglu(gate: Tensor, up: Tensor, out: Tensor): void {
  const g = f32Of(gate);
  const u = f32Of(up);
  const o = f32Of(out);
  for (let i = 0; i < g.length && i < out.size; i++) o[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
}
