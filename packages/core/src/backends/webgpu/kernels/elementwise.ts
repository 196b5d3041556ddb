import type { Tensor } from '../../../tensor/tensor.js';
import { grid } from '../program.js';
import { addWgsl, swigluWgsl } from '../shaders/elementwise.wgsl.js';
import { gpuOf } from '../webgpu-backend.js';

function elementwise(key: string, code: string, a: Tensor, b: Tensor, out: Tensor, n: number): void {
  const gpu = gpuOf(out);
  const width = out.shape.length > 1 ? out.shape[out.shape.length - 1] : n;
  const rows = n / width;
  for (const [r0, r1] of gpu.rowRuns(rows, [[a, width], [b, width], [out, width]])) {
    const count = (r1 - r0) * width;
    const [sa, sb, so] = [a, b, out].map((t) => gpu.at(t, r0 * width, count));
    gpu.dispatch({
      key,
      code,
      bindings: [
        { name: 'a', buf: sa.buf, type: 'f32' },
        { name: 'b', buf: sb.buf, type: 'f32' },
        { name: 'out', buf: so.buf, type: 'f32', write: true },
      ],
      params: [count, sa.offset, sb.offset, so.offset],
      workgroups: grid(count),
    });
  }
}

/** out = a + b (out may be a or b). */
export function add(a: Tensor, b: Tensor, out: Tensor): void {
  elementwise('add', addWgsl, a, b, out, out.size);
}

/** out = silu(gate) * up (out may be gate or up). */
export function swiglu(gate: Tensor, up: Tensor, out: Tensor): void {
  elementwise('swiglu', swigluWgsl, gate, up, out, Math.min(out.size, gate.size));
}
