import type { Tensor } from '../../../tensor/tensor.js';
import type { WgslType } from '../program.js';
import type { WeightLoad } from '../shaders/weight-load.wgsl.js';
import type { WebGpuBackend } from '../webgpu-backend.js';

/** How a float tensor of this dtype is bound (its WGSL element type) and read (`wload`). */
export function weightBinding(gpu: WebGpuBackend, t: Tensor): { type: WgslType; load: WeightLoad } {
  switch (t.dtype) {
    case 'f32':
      return { type: 'f32', load: 'f32' };
    case 'f16':
      return gpu.f16 ? { type: 'f16', load: 'f16-native' } : { type: 'u32', load: 'f16' };
    case 'bf16':
      return { type: 'u32', load: 'bf16' };
    default:
      throw new Error(`webgpu: no float kernel for dtype '${t.dtype}'`);
  }
}

/** Rows of a tensor seen as [rows, width] with width its last dimension. */
export function rowsOf(t: Tensor, width: number): number {
  if (t.size % width !== 0) throw new Error(`${t} is not a whole number of rows of ${width}`);
  return t.size / width;
}

/** Workgroup counts for one workgroup per row (split over x and y past 65535). */
export function perRow(rows: number): [number, number] {
  if (rows <= 65535) return [Math.max(rows, 1), 1];
  const y = Math.ceil(rows / 65535);
  return [Math.ceil(rows / y), y];
}
