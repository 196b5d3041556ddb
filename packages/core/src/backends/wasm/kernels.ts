import { globalKernels } from '../../backend/kernel-registry.js';
import type { AttentionParams } from '../../backend/kernel-signatures.js';
import type { KVCacheLayer } from '../../kv-cache/kv-cache.js';
import { registerDType } from '../../tensor/dtype.js';
import type { Tensor } from '../../tensor/tensor.js';
import { embedding } from '../cpu/kernels/embedding.js';
import { LINEAR_GROUPED_INT_OP, type GroupedIntWeights } from '../../model/grouped-int-linear.js';
import type { WasmBackend, WasmLinearDType } from './wasm-backend.js';

const be = (t: Tensor) => t.backend as WasmBackend;

let registered = false;

/**
 * Registers the wasm backend's kernels once. Every op runs in WebAssembly except the f32 / f16 /
 * bf16 embedding lookup, the reference kernel's row copy (or conversion) on the typed-array views
 * into wasm memory.
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
  // Grouped int weights (GPTQ, AWQ): GroupedIntLinear looks this kernel up by op name.
  r.register('wasm', LINEAR_GROUPED_INT_OP, (x: Tensor, w: GroupedIntWeights, b: Tensor | null, out: Tensor) => be(out).linearGroupedInt(x, w, b, out));
  r.register('wasm', 'attention', (q: Tensor, cache: KVCacheLayer, p: AttentionParams, out: Tensor) => be(out).attention(q, cache, p, out), { variant: 'dense' });
  r.register('wasm', 'convert', (src: Tensor, dst: Tensor, at: number) => be(dst).convertF16(src, dst, at), { variant: 'f16' });
  r.register('wasm', 'rmsNorm', (x: Tensor, w: Tensor, eps: number, out: Tensor) => be(out).rmsNorm(x, w, eps, out));
  r.register('wasm', 'add', (a: Tensor, b: Tensor, out: Tensor) => be(out).add(a, b, out));
  r.register('wasm', 'swiglu', (g: Tensor, u: Tensor, out: Tensor) => be(out).swiglu(g, u, out));

  for (const dtype of ['f32', 'f16', 'bf16']) r.register('wasm', 'embedding', embedding, { variant: dtype });
  // q8_0 / q4_0 tables are repacked on this backend, the others kept in llama.cpp's layout.
  for (const dtype of ['q8_0', 'q4_0', 'q4_1', 'q4_k', 'q6_k']) r.register('wasm', 'embedding', (t: Tensor, ids: Int32Array, out: Tensor) => be(out).embedding(t, ids, out), { variant: dtype });
  r.register('wasm', 'rope', (x: Tensor, nHeads: number, positions: Int32Array, invFreq: Float32Array) => be(x).rope(x, nHeads, positions, invFreq));
  r.register('wasm', 'softmax', (x: Tensor, out: Tensor) => be(out).softmax(x, out));
  r.register('wasm', 'argmax', (x: Tensor, out: Tensor) => be(x).argmax(x, out));
}
