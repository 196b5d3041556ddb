import { definePlugin, globalKernels, type AttentionParams, type Backend, type KVCacheLayer, type Tensor, type WasmBackend } from '@lithe/core';
import { FlashWasm, flashUnsupported } from './kernels/wasm-attention.js';
import { attentionFlashWebGpu, webGpuFlashUnsupported } from './kernels/webgpu-attention.js';

export interface FlashAttentionOptions {
  /** Where the one fallback notice goes (a cache kind or backend the kernels cannot serve); default console.warn. */
  warn?: (message: string) => void;
}

/** Backends with a flash kernel. */
export const FLASH_BACKENDS = ['wasm', 'webgpu'] as const;

/**
 * The flash-attn plugin: core's dense-cache attention replaced by tiled online-softmax kernels
 * (FlashAttention-2 query/key tiles for prefill, split-K chunks for decode): SIMD kernels on the
 * wasm backend's thread pool, workgroup-shared-memory tiles on WebGPU.
 *
 * ```ts
 * const pipeline = await createPipeline({ model, backend: 'wasm', plugins: [flashAttention()] });
 * ```
 *
 * The kernels take exactly core's inputs (f32 or f16 dense cache, GQA, sliding window, LCKV's
 * masked diagonal) and give the same results to f32 rounding. On both backends they also read any
 * block-quantized layer (`KVCacheLayer.quantized`: kv-quant's int8 / int4 caches), dequantizing each
 * block of keys and values as the tile loads it, whichever order the plugins are listed in. Where
 * they cannot serve (another backend, a cache kind with neither dense nor quantized tensors, a head
 * size that is not a multiple of 4 on wasm or above 256 on WebGPU) core's or that cache's kernel
 * runs instead, and the plugin says so once.
 */
export const flashAttention = definePlugin((options: FlashAttentionOptions | void) => {
  const warn = (options && options.warn) || ((m: string) => console.warn(m));
  const kernels = new WeakMap<Backend, FlashWasm>();
  let noticed = false;
  const notice = (why: string) => {
    if (noticed) return;
    noticed = true;
    warn(`flash-attn: ${why}; attention runs without flash kernels there`);
  };
  type Attend = (q: Tensor, cache: KVCacheLayer, p: AttentionParams, out: Tensor) => void;
  const coreKernel = (backend: string): Attend => (q, cache, p, out) => globalKernels.get(backend, 'attention', 'dense')(q, cache, p, out);
  // A quantized layer's own kernel (the cache plugin's, registered as the layer's kind).
  const kindKernel: Attend = (q, cache, p, out) => q.backend.kernels.get(q.backend.name, 'attention', cache.kind)(q, cache, p, out);
  // Each backend's flash kernel where it can read the layer, else `fallback` after the one notice.
  const wasm =
    (fallback: Attend): Attend =>
    (q, cache, p, out) => {
      const flash = kernels.get(q.backend);
      const why = flash ? flashUnsupported(cache, p) : null;
      if (flash && !why) return flash.attention(q, cache, p, out);
      notice(why ? `the wasm flash kernel cannot read ${why}` : 'the flash kernels were not loaded on this wasm backend (the plugin was set up on another)');
      fallback(q, cache, p, out);
    };
  const webgpu =
    (fallback: Attend): Attend =>
    (q, cache, p, out) => {
      const why = webGpuFlashUnsupported(q, cache, p, out);
      if (!why) return attentionFlashWebGpu(q, cache, p, out);
      notice(`the WebGPU flash kernel cannot read ${why}`);
      fallback(q, cache, p, out);
    };
  return {
    name: 'flash-attn',
    async setup(ctx) {
      if (ctx.backend.name === 'wasm') kernels.set(ctx.backend, await FlashWasm.load(ctx.backend as WasmBackend));
      else if (ctx.backend.name !== 'webgpu') notice(`no flash kernel for the '${ctx.backend.name}' backend (flash kernels: ${FLASH_BACKENDS.join(', ')})`);
    },
    attention: {
      kind: 'dense',
      kernels: { wasm: wasm(coreKernel('wasm')), webgpu: webgpu(coreKernel('webgpu')) },
      // Block-quantized layers of any cache kind (kv-quant's int8 / int4), dequantized in the tile.
      readsQuantized: { wasm: wasm(kindKernel), webgpu: webgpu(kindKernel) },
    },
    wrapDecode: (next, ctx) => (state) => {
      const { cache } = state;
      if (!noticed && cache.kind !== 'dense' && cache.nLayers > 0) {
        const quantized = cache.layer(0).quantized !== undefined;
        if (!quantized) notice(`the '${cache.kind}' KV cache brings its own attention kernel (flash kernels read dense f32 / f16 and block-quantized int8 / int4 caches)`);
        else if (!(FLASH_BACKENDS as readonly string[]).includes(ctx.backend.name)) notice(`no ${ctx.backend.name} flash kernel reads the quantized '${cache.kind}' cache (flash kernels: ${FLASH_BACKENDS.join(', ')}); its own kernel runs`);
      }
      return next(state);
    },
  };
});
