import { WasmBackend } from '@lithe/core';
import { freshRng } from '@lithe/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FourBitLinear } from '../four-bit-weights.js';
import { dequantize4bit, quantize4bit } from '../quantize.js';

const rng = freshRng();

/** out = x · W_deqᵀ + b in f64, and Σ|x·w| for the tolerance. */
function reference(x: Float32Array, w: Float32Array, bias: Float32Array | null, T: number, outF: number, inF: number) {
  const out = new Float64Array(T * outF);
  const mag = new Float64Array(T * outF);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < outF; o++) {
      let s = bias ? bias[o] : 0;
      let m = Math.abs(s);
      for (let i = 0; i < inF; i++) {
        s += x[t * inF + i] * w[o * inF + i];
        m += Math.abs(x[t * inF + i] * w[o * inF + i]);
      }
      out[t * outF + o] = s;
      mag[t * outF + o] = m;
    }
  }
  return { out, mag };
}

// [out, in, blockSize]: whole blocks per row (core's SIMD kernel: odd counts of blocks, blocks of
// 2 and 6 bytes that leave a tail after the 4-byte loop), and layouts it does not take (blocks
// crossing rows, rows starting mid-byte), which fall back to the CPU kernel.
const SHAPES: [number, number, number][] = [
  [24, 128, 64],
  [7, 192, 64],
  [13, 36, 12],
  [5, 12, 4],
  [3, 256, 128],
  [7, 100, 64],
  [5, 33, 16],
];

describe(`4-bit linear on the wasm backend (core's codebook kernel) against dequantize-then-matmul in f64 (seed ${rng.seed})`, () => {
  let backend: WasmBackend;
  beforeAll(async () => {
    backend = await WasmBackend.create({ threads: 2, minParallelWork: 0 });
  });
  afterAll(() => backend.close());

  for (const [outF, inF, B] of SHAPES) {
    for (const type of ['nf4', 'fp4'] as const) {
      for (const doubleQuant of [true, false]) {
        it(`${type} [${outF}, ${inF}] block ${B}${doubleQuant ? ' double-quantized' : ''}, T = 1..5 and 9, with and without bias`, () => {
          const wf = Float32Array.from({ length: outF * inF }, () => rng.normal() * 0.05);
          const q = quantize4bit(wf, [outF, inF], { type, blockSize: B, doubleQuant, nestedBlockSize: 4 });
          const wd = dequantize4bit(q);
          for (const withBias of [false, true]) {
            const bias = withBias ? Float32Array.from({ length: outF }, () => rng.normal()) : null;
            const biasT = bias ? backend.upload(new Uint8Array(bias.slice().buffer), [outF], 'f32', 'weights') : null;
            const m = FourBitLinear.fromQuantized('w', backend, { ...q, codes: q.codes.slice() }, 'f32', biasT);
            for (const T of [1, 2, 3, 4, 5, 9]) {
              const x = Float32Array.from({ length: T * inF }, () => rng.normal());
              const xt = backend.upload(new Uint8Array(x.slice().buffer), [T, inF], 'f32', 'activations');
              const out = backend.allocate([T, outF], 'f32', 'activations');
              m.forward(xt, out);
              const y = out.handle as Float32Array;
              const ref = reference(x, wd, bias, T, outF, inF);
              // f32 products and sums (the CPU kernel sums in f64): a few ulps of Σ|x·w| per term.
              for (let i = 0; i < T * outF; i++) expect(Math.abs(y[i] - ref.out[i]), `row ${Math.floor(i / outF)}, output ${i % outF}`).toBeLessThanOrEqual(4e-6 * ref.mag[i] + 1e-7);
              backend.dispose(xt);
              backend.dispose(out);
            }
            m.dispose();
          }
        });
      }
    }
  }

  it('refuses a layout core does not take with a sentence naming it', () => {
    const q = quantize4bit(Float32Array.from({ length: 5 * 33 }, () => rng.normal()), [5, 33], { blockSize: 16 });
    const m = FourBitLinear.fromQuantized('w', backend, q);
    const x = backend.allocate([1, 33], 'f32', 'activations');
    const out = backend.allocate([1, 5], 'f32', 'activations');
    const w = m.weights;
    expect(() => backend.linearCodebook4(x, { ...w, scales: w.absmax, scaleCodes: w.absmaxCodes, scaleScales: w.absmaxScale, scaleMap: w.nestedMap, scaleBlock: w.nestedBlockSize, scaleOffset: w.offset }, null, out)).toThrow(/whole blocks of 16/);
  });
});
