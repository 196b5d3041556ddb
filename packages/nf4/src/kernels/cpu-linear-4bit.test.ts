import { BF16_TABLE, CpuBackend, F16_TABLE, f32ToBf16, f32ToF16 } from '@lithe/core';
import { describe, expect, it } from 'vitest';
import { FourBitLinear, type ComputeDType } from '../four-bit-weights.js';
import { dequantize4bit, quantize4bit } from '../quantize.js';
import { freshRng } from '@lithe/core/testing';

const rng = freshRng();
console.log(`cpu-linear-4bit.test seed ${rng.seed}`);

const ROUND: Record<ComputeDType, (v: number) => number> = {
  f32: (v) => v,
  f16: (v) => F16_TABLE[f32ToF16(v)],
  bf16: (v) => BF16_TABLE[f32ToBf16(v)],
};

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

// [out, in, blockSize]: whole blocks per row (fast decode path), blocks crossing rows, rows starting mid-byte.
const SHAPES: [number, number, number][] = [
  [24, 128, 64],
  [7, 100, 64],
  [5, 33, 16],
  [9, 64, 32],
  [3, 256, 128],
];

describe('4-bit linear kernel (CPU) against dequantize-then-matmul in f64', () => {
  const backend = new CpuBackend();
  for (const [outF, inF, B] of SHAPES) {
    for (const type of ['nf4', 'fp4'] as const) {
      for (const doubleQuant of [true, false]) {
        it(`${type} [${outF}, ${inF}] block ${B}${doubleQuant ? ' double-quantized' : ''}, T = 1, 2, 5, with and without bias`, () => {
          const wf = Float32Array.from({ length: outF * inF }, () => rng.normal() * 0.05);
          const q = quantize4bit(wf, [outF, inF], { type, blockSize: B, doubleQuant, nestedBlockSize: 4 });
          const wd = dequantize4bit(q);
          for (const withBias of [false, true]) {
            const bias = withBias ? Float32Array.from({ length: outF }, () => rng.normal()) : null;
            const biasT = bias ? backend.upload(new Uint8Array(bias.slice().buffer), [outF], 'f32', 'weights') : null;
            const m = FourBitLinear.fromQuantized('w', backend, { ...q, codes: q.codes.slice() }, 'f32', biasT);
            for (const T of [1, 2, 5]) {
              const x = Float32Array.from({ length: T * inF }, () => rng.normal());
              const xt = backend.upload(new Uint8Array(x.slice().buffer), [T, inF], 'f32', 'activations');
              const out = backend.allocate([T, outF], 'f32', 'activations');
              m.forward(xt, out);
              const y = out.handle as Float32Array;
              const ref = reference(x, wd, bias, T, outF, inF);
              for (let i = 0; i < T * outF; i++) expect(Math.abs(y[i] - ref.out[i])).toBeLessThanOrEqual(1e-6 * ref.mag[i] + 1e-7);
              xt.dispose();
              out.dispose();
            }
            m.dispose();
          }
        });
      }
    }
  }

  for (const dt of ['f16', 'bf16'] as const) {
    it(`computeDType ${dt} rounds each dequantized weight to ${dt} before the product`, () => {
      const [outF, inF] = [6, 128];
      const q = quantize4bit(Float32Array.from({ length: outF * inF }, () => rng.normal()), [outF, inF]);
      const wd = dequantize4bit(q).map(ROUND[dt]);
      const m = FourBitLinear.fromQuantized('w', backend, q, dt);
      const x = Float32Array.from({ length: inF }, () => rng.normal());
      const out = backend.allocate([1, outF], 'f32', 'activations');
      m.forward(backend.upload(new Uint8Array(x.slice().buffer), [1, inF], 'f32', 'activations'), out);
      const ref = reference(x, wd, null, 1, outF, inF);
      for (let o = 0; o < outF; o++) expect(Math.abs((out.handle as Float32Array)[o] - ref.out[o])).toBeLessThanOrEqual(1e-6 * ref.mag[o]);
    });
  }

  it('the module counts exactly the buffers it holds, and frees them', () => {
    const b = new CpuBackend();
    const q = quantize4bit(Float32Array.from({ length: 64 * 640 }, () => rng.normal()), [64, 640]);
    const m = FourBitLinear.fromQuantized('w', b, q);
    // 20480 code bytes, 640 absmax codes, 3 nested scales (f32).
    expect(m.bytes).toBe(20480 + 640 + 3 * 4);
    expect(b.memory.snapshot().current.weights).toBe(m.bytes);
    m.dispose();
    expect(b.memory.snapshot().current.weights).toBe(0);
  });
});
