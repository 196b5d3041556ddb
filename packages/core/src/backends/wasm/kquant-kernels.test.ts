/**
 * The wasm backend's q4_1, q4_k and q6_k linears (wasm/kquants.ts) against the CPU backend's
 * TypeScript kernels, on fresh random inputs: odd row counts, 1 to 9 blocks or super-blocks per row,
 * 1, 2 and 5 activation rows, with and without bias, on 1 and 2 threads. Plus tensors that keep
 * llama.cpp's bytes, their embedding lookups, and a small model with q4_k / q6_k weights.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../backend/backend.js';
import { definePlugin } from '../../plugin/define-plugin.js';
import { createPipeline } from '../../pipeline/create-pipeline.js';
import type { Pipeline } from '../../pipeline/pipeline.js';
import { dequantize } from '../../quant/dequantize.js';
import { BLOCK_FORMATS } from '../../quant/formats.js';
import { quantizeQ4_1 } from '../../quant/quantize.js';
import { f32ToF16 } from '../../tensor/half.js';
import type { Tensor } from '../../tensor/tensor.js';
import { freshRng, randn } from '../../testing/random.js';
import { tinyModel } from '../../testing/tiny-model.js';
import { CpuBackend } from '../cpu/cpu-backend.js';
import { activationRoundingBound, expectWithin, f32, kernel, out, raw, values } from './kernel-test-helpers.js';
import { WasmBackend } from './wasm-backend.js';

type Format = 'q4_1' | 'q4_k' | 'q6_k';
type Rng = ReturnType<typeof freshRng>;

const rng = freshRng();
const cpu = new CpuBackend();


/**
 * Weights of `rows` x `cols` in `format` with values of magnitude about `scale`: q4_1 quantized
 * from normal floats; k-quant blocks of random bytes (every scale, min and quant) with their f16
 * super-block scales set so the values come out near `scale` and about zero on average. Some blocks
 * are far smaller (their f16 scales subnormal, which the kernels decode apart) or all zero.
 */
function randomWeights(format: Format, rows: number, cols: number, r: Rng, scale: number): Uint8Array {
  // A block's size: `small` for a fifth of them, 0 for a tenth, else 1.
  const size = (small: number): number => {
    const u = r.uniform();
    return u < 0.2 ? small : u < 0.3 ? 0 : 1;
  };
  if (format === 'q4_1') {
    const x = randn(rows * cols, r.normal, scale);
    for (let b = 0; b < x.length; b += 32) {
      const f = size(1e-4);
      for (let j = b; j < b + 32; j++) x[j] *= f;
    }
    return quantizeQ4_1(x);
  }
  const { blockSize, blockBytes } = BLOCK_FORMATS[format];
  const bytes = new Uint8Array(((rows * cols) / blockSize) * blockBytes);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(r.uniform() * 256);
  const putF16 = (p: number, v: number) => {
    const h = f32ToF16(v);
    bytes[p] = h & 0xff;
    bytes[p + 1] = h >> 8;
  };
  for (let p = 0; p < bytes.length; p += blockBytes) {
    const s = scale * size(1e-3);
    // q4_k: d·sc·nibble averages d·32·7.5, dmin·mn dmin·32; q6_k: |d·sc·(q − 32)| averages d·64·16.
    if (format === 'q4_k') {
      putF16(p, (s / 240) * (0.5 + r.uniform()));
      putF16(p + 2, (s / 32) * (0.5 + r.uniform()));
    } else putF16(p + 208, (s / 512) * (r.uniform() - 0.5));
  }
  return bytes;
}

// [in, out]: 1, 3, 4 and 9 blocks of 32 (the 4-block loop, its tail, and both); 1, 3 and 9
// super-blocks of 256.
const SHAPES: Record<Format, [number, number][]> = {
  q4_1: [
    [32, 5],
    [96, 37],
    [128, 19],
    [288, 19],
  ],
  q4_k: [
    [256, 5],
    [768, 37],
    [2304, 19],
  ],
  q6_k: [
    [256, 5],
    [768, 37],
    [2304, 19],
  ],
};
const FORMATS: Format[] = ['q4_1', 'q4_k', 'q6_k'];

for (const threads of [1, 2]) {
  describe(`wasm q4_1 / q4_k / q6_k kernels, ${threads} thread(s), against the TypeScript reference (seed ${rng.seed})`, () => {
    let wasm: WasmBackend;
    beforeAll(async () => {
      wasm = await WasmBackend.create({ threads, minParallelWork: 0 });
    });
    afterAll(() => wasm.close());

    for (const format of FORMATS) {
      it.each([1, 2, 3, 4, 5, 9])(`linear ${format} on %i rows, with and without bias (activations quantized to 8 bits per block)`, (T) => {
        for (const [inF, outF] of SHAPES[format]) {
          const x = randn(T * inF, rng.normal);
          const bytes = randomWeights(format, outF, inF, rng, 0.3);
          const w = dequantize(format, bytes);
          const bias = randn(outF, rng.normal);
          for (const b of [null, bias]) {
            const run = (be: Backend) => {
              const y = out(be, [T, outF]);
              kernel(be)('linear', format)(f32(be, x, [T, inF]), raw(be, bytes, [outF, inF], format), b && f32(be, b, [outF]), y);
              return values(y);
            };
            const ref = run(cpu);
            expectWithin(run(wasm), ref, activationRoundingBound(x, w, inF, outF));
          }
        }
      });
    }

    it('rejects a k-quant weight whose rows are not whole super-blocks', () => {
      // Three super-blocks' bytes hold a [2, 384] tensor, but its rows of 384 split a super-block.
      const w = raw(wasm, randomWeights('q4_k', 3, 256, rng, 0.3), [2, 384], 'q4_k');
      expect(() => kernel(wasm)('linear', 'q4_k')(f32(wasm, randn(384, rng.normal), [1, 384]), w, null, out(wasm, [1, 2]))).toThrow(/not a multiple of 256/);
    });

    for (const format of FORMATS) {
      const { blockSize, blockBytes } = BLOCK_FORMATS[format];

      it(`${format} tensors keep llama.cpp's bytes (read back and written by row unchanged)`, async () => {
        const [cols, rowBytes] = [2 * blockSize, 2 * blockBytes];
        const bytes = randomWeights(format, 7, cols, rng, 1);
        const t = raw(wasm, bytes, [7, cols], format);
        expect(Array.from((await wasm.read(t)) as Uint8Array)).toEqual(Array.from(bytes));
        const row = randomWeights(format, 1, cols, rng, 1);
        wasm.write(t, row, 2 * rowBytes);
        const expected = bytes.slice();
        expected.set(row, 2 * rowBytes);
        expect(Array.from((await wasm.read(t)) as Uint8Array)).toEqual(Array.from(expected));
      });

      it(`embedding from a ${format} table decodes the looked-up rows exactly`, () => {
        const [V, D] = [11, 2 * blockSize];
        const bytes = randomWeights(format, V, D, rng, 1);
        const table = dequantize(format, bytes);
        const ids = Int32Array.from([3, 0, 10, 3, 7]);
        const y = out(wasm, [ids.length, D]);
        kernel(wasm)('embedding', format)(raw(wasm, bytes, [V, D], format), ids, y);
        expect(values(y)).toEqual(Array.from(ids).flatMap((id) => Array.from(table.subarray(id * D, (id + 1) * D))));
        expect(() => kernel(wasm)('embedding', format)(raw(wasm, bytes, [V, D], format), Int32Array.from([V]), out(wasm, [1, D]))).toThrow(/outside the vocabulary/);
      });
    }
  });
}

describe('a small model with q4_k / q6_k weights on the wasm backend against the CPU backend', () => {
  const opened: WasmBackend[] = [];
  afterAll(async () => {
    for (const b of opened) await b.close();
  });

  /**
   * Replaces every linear weight with random k-quant blocks as it loads, as a Q4_K_M file mixes
   * them: q6_k for the down projections and the output head, q4_k elsewhere. Every pipeline gets
   * the same bytes (made once per weight name).
   */
  const made = new Map<string, Uint8Array>();
  const kQuantWeights = definePlugin(() => ({
    name: 'test-k-quants',
    transformWeights: (t: Tensor, info) => {
      if (info.role !== 'linear' && info.role !== 'lm_head') return t;
      const format = info.role === 'lm_head' || info.name.includes('down_proj') ? 'q6_k' : 'q4_k';
      const [rows, cols] = t.shape;
      let bytes = made.get(info.name);
      if (!bytes) made.set(info.name, (bytes = randomWeights(format, rows, cols, rng, 0.02)));
      const q = t.backend.upload(bytes, t.shape, format, 'weights');
      t.dispose();
      return q;
    },
  }));

  /** x rounded to the wasm kernels' 8-bit activations: steps of amax/127 per 32 values, ties to even. */
  function roundAsWasm(x: Float32Array): Float32Array {
    const y = new Float32Array(x.length);
    for (let b = 0; b < x.length; b += 32) {
      let amax = 0;
      for (let j = b; j < b + 32; j++) amax = Math.max(amax, Math.abs(x[j]));
      const step = Math.fround(amax / 127);
      const inv = amax > 0 ? Math.fround(127 / amax) : 0;
      for (let j = b; j < b + 32; j++) {
        const v = Math.fround(x[j] * inv);
        const q = Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v);
        y[j] = q * step;
      }
    }
    return y;
  }

  /** A CPU backend whose k-quant linears take the activations rounded as the wasm kernels take them. */
  function cpuWithRoundedActivations(): CpuBackend {
    const kernels = cpu.kernels.child();
    for (const format of ['q4_k', 'q6_k']) {
      const reference = cpu.kernels.get('cpu', 'linear', format);
      const rounded = (x: Tensor, w: Tensor, b: Tensor | null, y: Tensor) => {
        const xr = f32(x.backend, roundAsWasm(x.handle as Float32Array), [...x.shape]);
        reference(xr, w, b, y);
        xr.dispose();
      };
      kernels.register('cpu', 'linear', rounded, { variant: format, override: true });
    }
    return new CpuBackend(kernels);
  }

  async function logitsOf(p: Pipeline, ids: number[]): Promise<Float32Array> {
    const cache = p.createCache(64);
    const logits = p.model.forward(Int32Array.from(ids), cache, { logits: 'all' });
    const result = (await p.backend.read(logits)) as Float32Array;
    cache.dispose();
    return result;
  }

  /** Largest |a − b| over the largest |a|. */
  function relativeGap(a: Float32Array, b: Float32Array): number {
    let spread = 0;
    let worst = 0;
    for (let i = 0; i < a.length; i++) {
      spread = Math.max(spread, Math.abs(a[i]));
      worst = Math.max(worst, Math.abs(a[i] - b[i]));
    }
    return worst / spread;
  }

  it('logits close to the reference kernels, and closer still with activations rounded as wasm rounds them', async () => {
    // Input sizes must be whole super-blocks of 256.
    const m = tinyModel({ hidden_size: 256, intermediate_size: 512 }, 'F32', rng.seed);
    const wasmBackend = await WasmBackend.create({ threads: 2, minParallelWork: 0 });
    opened.push(wasmBackend);
    const [ref, rounded, wasm] = await Promise.all(
      [new CpuBackend(), cpuWithRoundedActivations(), wasmBackend].map((backend) => createPipeline({ model: m.files, backend, plugins: [kQuantWeights()] })),
    );
    expect(wasm.model.layers[0].q.bytes).toBe(256 * 144); // q4_k: 256 rows of one super-block
    expect(wasm.model.layers[0].down.bytes).toBe(256 * 2 * 210); // q6_k: 256 rows of two
    const ids = ref.encode('The jury further said in term-end presentments');
    const [la, lr, lw] = [await logitsOf(ref, ids), await logitsOf(rounded, ids), await logitsOf(wasm, ids)];
    // As for q8_0 / q4_0 in wasm-model.test.ts: 8-bit activations at every linear move the logits
    // by a few percent of their largest magnitude at most (measured up to 1.4% over 30 seeds).
    expect(relativeGap(la, lw), `seed ${rng.seed}`).toBeLessThan(0.05);
    // With the same rounding on the CPU, what is left is f32 summation order (about 2e-7), except
    // where an activation sits near a rounding tie and the two backends' last-bit differences round
    // it apart (measured up to 0.4%).
    expect(relativeGap(lr, lw), `seed ${rng.seed}`).toBeLessThan(0.02);
  });
});
