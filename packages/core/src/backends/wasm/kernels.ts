import { globalKernels } from '../../backend/kernel-registry.js';
import type { AttentionParams } from '../../backend/kernel-signatures.js';
import type { KVCacheLayer } from '../../kv-cache/kv-cache.js';
import { registerDType } from '../../tensor/dtype.js';
import type { Tensor } from '../../tensor/tensor.js';
import { argmax } from '../cpu/kernels/argmax.js';
import { embedding } from '../cpu/kernels/embedding.js';
import { embeddingQuantized } from '../cpu/kernels/embedding-quantized.js';
import { rope } from '../cpu/kernels/rope.js';
import { softmax } from '../cpu/kernels/softmax.js';
import { embeddingRepacked } from './repacked-rows.js';
import type { WasmBackend, WasmLinearDType } from './wasm-backend.js';

const be = (t: Tensor) => t.backend as WasmBackend;

let registered = false;

/**
 * Registers the wasm backend's kernels once. Linear (f32, f16, bf16, q8_0, q4_0, q4_1, q4_k, q6_k),
 * attention, rmsNorm, add and swiglu run in WebAssembly; embedding, rope, softmax and argmax are
 * the reference TypeScript kernels, which work unchanged on the typed-array views into wasm memory
 * (they touch one row per token, or the logits once per step).
 */
export function registerWasmKernels(): void {
  if (registered) return;
  registered = true;
  // llama.cpp's block layouts (the same registration as quant/formats.ts; identical ones are allowed).
  registerDType({ name: 'q8_0', blockSize: 32, blockBytes: 34, float: false });
  registerDType({ name: 'q4_0', blockSize: 32, blockBytes: 18, float: false });
  registerDType({ name: 'q4_1', blockSize: 32, blockBytes: 20, float: false });
  registerDType({ name: 'q4_k', blockSize: 256, blockBytes: 144, float: false });
  registerDType({ name: 'q6_k', blockSize: 256, blockBytes: 210, float: false });

  const r = globalKernels;
  for (const dtype of ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q4_k', 'q6_k'] as WasmLinearDType[]) {
    r.register('wasm', 'linear', (x: Tensor, w: Tensor, b: Tensor | null, out: Tensor) => be(out).linear(dtype, x, w, b, out), { variant: dtype });
  }
  r.register('wasm', 'attention', (q: Tensor, cache: KVCacheLayer, p: AttentionParams, out: Tensor) => be(out).attention(q, cache, p, out), { variant: 'dense' });
  r.register('wasm', 'rmsNorm', (x: Tensor, w: Tensor, eps: number, out: Tensor) => be(out).rmsNorm(x, w, eps, out));
  r.register('wasm', 'add', (a: Tensor, b: Tensor, out: Tensor) => be(out).add(a, b, out));
  r.register('wasm', 'swiglu', (g: Tensor, u: Tensor, out: Tensor) => be(out).swiglu(g, u, out));

  for (const dtype of ['f32', 'f16', 'bf16']) r.register('wasm', 'embedding', embedding, { variant: dtype });
  for (const dtype of ['q8_0', 'q4_0']) r.register('wasm', 'embedding', embeddingRepacked, { variant: dtype });
  // Kept in llama.cpp's layout on this backend (not repacked): the CPU backend's kernel reads them.
  for (const dtype of ['q4_1', 'q4_k', 'q6_k']) r.register('wasm', 'embedding', embeddingQuantized, { variant: dtype });
  r.register('wasm', 'rope', rope);
  r.register('wasm', 'softmax', softmax);
  r.register('wasm', 'argmax', argmax);
}
