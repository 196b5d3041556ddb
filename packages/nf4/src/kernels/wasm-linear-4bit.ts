import { WasmBackend, type Codebook4Weights, type Tensor } from '@lithe/core';
import type { FourBitWeights } from '../four-bit-weights.js';
import { linear4bitCpu } from './cpu-linear-4bit.js';

// The weights as core's generic 4-bit codebook format, made once per weight.
const asCodebook = new WeakMap<FourBitWeights, Codebook4Weights>();

function codebookWeights(w: FourBitWeights): Codebook4Weights {
  let c = asCodebook.get(w);
  if (!c) {
    c = {
      outFeatures: w.outFeatures,
      inFeatures: w.inFeatures,
      blockSize: w.blockSize,
      codes: w.codes,
      codebook: w.codebook,
      scales: w.absmax,
      scaleCodes: w.absmaxCodes,
      scaleScales: w.absmaxScale,
      scaleMap: w.nestedMap,
      scaleBlock: w.nestedBlockSize,
      scaleOffset: w.offset,
    };
    asCodebook.set(w, c);
  }
  return c;
}

/**
 * The wasm backend's 4-bit linear: core's SIMD codebook kernel (WasmBackend.linearCodebook4, one
 * kernel for every 16-value codebook, NF4 and FP4 alike) where the layout fits it (f32 compute,
 * rows of whole blocks); otherwise the CPU kernel, which runs on the typed-array views into wasm
 * memory unchanged (f16 / bf16 compute, blocks that cross rows).
 */
export function linear4bitWasm(x: Tensor, w: FourBitWeights, bias: Tensor | null, out: Tensor): void {
  const be = out.backend;
  if (be instanceof WasmBackend && w.computeDType === 'f32' && w.blockSize % 2 === 0 && w.inFeatures % w.blockSize === 0) {
    be.linearCodebook4(x, codebookWeights(w), bias, out);
    return;
  }
  linear4bitCpu(x, w, bias, out);
}
