import { globalKernels } from '../../../backend/kernel-registry.js';
import { argmax } from './argmax.js';
import { attentionDense } from './attention.js';
import { convertF16 } from './convert.js';
import { add, swiglu } from './elementwise.js';
import { embedding } from './embedding.js';
import { linear } from './linear.js';
import { rmsNorm } from './rms-norm.js';
import { rope } from './rope.js';
import { softmax } from './softmax.js';

let registered = false;

/** Registers core's WebGPU kernels in the global registry once (as the CPU backend does its own). */
export function registerWebGpuKernels(): void {
  if (registered) return;
  registered = true;
  const r = globalKernels;
  for (const dtype of ['f32', 'f16', 'bf16']) {
    r.register('webgpu', 'embedding', embedding, { variant: dtype });
    r.register('webgpu', 'linear', linear, { variant: dtype });
  }
  r.register('webgpu', 'attention', attentionDense, { variant: 'dense' });
  r.register('webgpu', 'convert', convertF16, { variant: 'f16' });
  r.register('webgpu', 'rmsNorm', rmsNorm);
  r.register('webgpu', 'rope', rope);
  r.register('webgpu', 'swiglu', swiglu);
  r.register('webgpu', 'add', add);
  r.register('webgpu', 'softmax', softmax);
  r.register('webgpu', 'argmax', argmax);
}
