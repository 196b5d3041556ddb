import { globalKernels } from '../../../backend/kernel-registry.js';
import { add } from './add.js';
import { argmax } from './argmax.js';
import { attentionDense } from './attention.js';
import { embedding } from './embedding.js';
import { linearBF16, linearF16, linearF32 } from './linear.js';
import { rmsNorm } from './rms-norm.js';
import { rope } from './rope.js';
import { softmax } from './softmax.js';
import { swiglu } from './swiglu.js';

let registered = false;

/** Registers core's CPU kernels in the global registry once. */
export function registerCpuKernels(): void {
  if (registered) return;
  registered = true;
  const r = globalKernels;
  for (const dtype of ['f32', 'f16', 'bf16']) r.register('cpu', 'embedding', embedding, { variant: dtype });
  r.register('cpu', 'linear', linearF32, { variant: 'f32' });
  r.register('cpu', 'linear', linearF16, { variant: 'f16' });
  r.register('cpu', 'linear', linearBF16, { variant: 'bf16' });
  r.register('cpu', 'attention', attentionDense, { variant: 'dense' });
  r.register('cpu', 'rmsNorm', rmsNorm);
  r.register('cpu', 'rope', rope);
  r.register('cpu', 'swiglu', swiglu);
  r.register('cpu', 'add', add);
  r.register('cpu', 'softmax', softmax);
  r.register('cpu', 'argmax', argmax);
}
