import { globalKernels } from '../../../backend/kernel-registry.js';
import { add } from './add.js';
import { argmax } from './argmax.js';
import { attentionDense } from './attention.js';
import { convertF16 } from './convert.js';
import { embedding } from './embedding.js';
import { embeddingQuantized } from './embedding-quantized.js';
import { linearBF16, linearF16, linearF32 } from './linear.js';
import { linearQ4_0 } from './linear-q4-0.js';
import { linearQ4_1 } from './linear-q4-1.js';
import { linearQ4_K } from './linear-q4-k.js';
import { linearQ6_K } from './linear-q6-k.js';
import { linearQ8_0 } from './linear-q8-0.js';
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
  // Block formats (quant/formats.ts): dequantized inside the dot product, one block at a time.
  r.register('cpu', 'linear', linearQ8_0, { variant: 'q8_0' });
  r.register('cpu', 'linear', linearQ4_0, { variant: 'q4_0' });
  r.register('cpu', 'linear', linearQ4_1, { variant: 'q4_1' });
  r.register('cpu', 'linear', linearQ4_K, { variant: 'q4_k' });
  r.register('cpu', 'linear', linearQ6_K, { variant: 'q6_k' });
  for (const dtype of ['q8_0', 'q4_0', 'q4_1', 'q4_k', 'q6_k']) r.register('cpu', 'embedding', embeddingQuantized, { variant: dtype });
  r.register('cpu', 'attention', attentionDense, { variant: 'dense' });
  r.register('cpu', 'convert', convertF16, { variant: 'f16' });
  r.register('cpu', 'rmsNorm', rmsNorm);
  r.register('cpu', 'rope', rope);
  r.register('cpu', 'swiglu', swiglu);
  r.register('cpu', 'add', add);
  r.register('cpu', 'softmax', softmax);
  r.register('cpu', 'argmax', argmax);
}
