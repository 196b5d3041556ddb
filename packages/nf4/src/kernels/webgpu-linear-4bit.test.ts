import { createPipeline, WebGpuBackend, type Backend } from '@lithe/core';
import { describe, expect, it } from 'vitest';
import { FourBitLinear } from '../four-bit-weights.js';
import { nf4 } from '../plugin.js';
import { dequantize4bit, quantize4bit } from '../quantize.js';
import { freshRng, tinyModel } from '@lithe/core/testing';

const rng = freshRng();
console.log(`webgpu-linear-4bit.test seed ${rng.seed}`);

// Dawn runs on a software adapter where there is no GPU; where no adapter at all can be had, skip
// (as core's WebGPU tests do: CI requires one).
let gpu: WebGpuBackend | null = null;
let reason = '';
try {
  gpu = await WebGpuBackend.create();
} catch (e) {
  reason = (e as Error).message;
  if (process.env.CI) throw new Error(`WebGPU is required in CI but unavailable: ${reason}`);
  console.warn(`skipping WebGPU tests: ${reason}`);
}

const upload = (b: Backend, a: Float32Array, shape: number[]) => b.upload(new Uint8Array(a.slice().buffer), shape, 'f32', 'activations');

describe.skipIf(!gpu)('4-bit linear kernel (WebGPU) against dequantize-then-matmul in f64', () => {
  const SHAPES: [number, number, number][] = [
    [24, 128, 64],
    [7, 96, 64], // blocks cross rows
    [3, 256, 128],
  ];
  for (const [N, K, B] of SHAPES) {
    for (const doubleQuant of [true, false]) {
      it(`nf4 [${N}, ${K}] block ${B}${doubleQuant ? ' double-quantized' : ''}, T = 1, 3, 11, with bias`, async () => {
        const b = gpu!;
        const q = quantize4bit(Float32Array.from({ length: N * K }, () => rng.normal() * 0.05), [N, K], { blockSize: B, doubleQuant, nestedBlockSize: 4 });
        const wd = dequantize4bit(q);
        const bias = Float32Array.from({ length: N }, () => rng.normal());
        const m = FourBitLinear.fromQuantized('w', b, q, 'f32', upload(b, bias, [N]));
        for (const T of [1, 3, 11]) {
          const x = Float32Array.from({ length: T * K }, () => rng.normal());
          const out = b.allocate([T, N], 'f32', 'activations');
          m.forward(upload(b, x, [T, K]), out);
          const y = (await b.read(out)) as Float32Array;
          for (let t = 0; t < T; t++) {
            for (let n = 0; n < N; n++) {
              let s = bias[n];
              let mag = Math.abs(bias[n]);
              for (let k = 0; k < K; k++) {
                s += x[t * K + k] * wd[n * K + k];
                mag += Math.abs(x[t * K + k] * wd[n * K + k]);
              }
              expect(Math.abs(y[t * N + n] - s)).toBeLessThanOrEqual(1e-5 * mag + 1e-6);
            }
          }
        }
        m.dispose();
      });
    }
  }

  it('a pipeline on WebGPU with nf4() gives the logits of the CPU one', async () => {
    const tiny = tinyModel({}, 'F32', rng.seed);
    const prompt = Int32Array.from([1, 415, 25150, 773, 369]);
    const run = async (backend: Backend | 'cpu') => {
      const p = await createPipeline({ model: tiny.files, backend, plugins: [nf4()], cacheSize: 32, kvDtype: 'f32' });
      const cache = p.createCache(16);
      const out = Float32Array.from((await p.backend.read(p.model.forward(prompt, cache, { logits: 'all' }))) as Float32Array);
      expect(p.backend.memory.snapshot().current.weights).toBe(p.model.weightBytes);
      return out;
    };
    const [g, c] = [await run(gpu!), await run('cpu')];
    let max = 0;
    for (let i = 0; i < g.length; i++) max = Math.max(max, Math.abs(g[i] - c[i]));
    expect(max).toBeLessThan(1e-3);
  });
});
