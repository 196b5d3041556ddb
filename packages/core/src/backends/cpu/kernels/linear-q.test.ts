import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../cpu-backend.js';
import { freshRng, randn } from '../../../testing/random.js';
import { f32ToF16 } from '../../../tensor/half.js';
import { BLOCK_FORMATS, type BlockFormat } from '../../../quant/formats.js';
import { dequantize } from '../../../quant/dequantize.js';
import { quantize } from '../../../quant/quantize.js';

type Rng = ReturnType<typeof freshRng>;

/** Random weights in a format: quantized from random floats, or random k-quant blocks with sane scales. */
function randomWeights(format: BlockFormat, rows: number, cols: number, rng: Rng): Uint8Array {
  if (format === 'q8_0' || format === 'q4_0' || format === 'q4_1') return quantize(format, randn(rows * cols, rng.normal, 0.5));
  const { blockSize, blockBytes } = BLOCK_FORMATS[format];
  const nb = (rows * cols) / blockSize;
  const out = new Uint8Array(nb * blockBytes);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(rng.uniform() * 256);
  const put = (p: number, v: number) => ((out[p] = f32ToF16(v) & 0xff), (out[p + 1] = f32ToF16(v) >> 8));
  for (let b = 0; b < nb; b++) {
    const p = b * blockBytes;
    if (format === 'q4_k') {
      put(p, 0.01 * (0.5 + rng.uniform()));
      put(p + 2, 0.01 * rng.uniform());
    } else put(p + 208, 0.01 * (rng.uniform() - 0.5));
  }
  return out;
}

const FORMATS = Object.keys(BLOCK_FORMATS) as BlockFormat[];

describe('quantized linear kernels vs dequantize + f64 matmul', () => {
  const backend = new CpuBackend();
  for (const format of FORMATS) {
    const { blockSize } = BLOCK_FORMATS[format];
    for (const [outF, blocks] of [[1, 1], [7, 3], [13, 2]]) {
      for (const T of [1, 2, 5]) {
        it(`${format} out ${outF} in ${blocks * blockSize} T ${T}`, () => {
          const rng = freshRng();
          const inF = blocks * blockSize;
          const wBytes = randomWeights(format, outF, inF, rng);
          const w = backend.upload(wBytes, [outF, inF], format, 'weights');
          const xv = randn(T * inF, rng.normal);
          const x = backend.upload(new Uint8Array(xv.buffer), [T, inF], 'f32', 'activations');
          const withBias = T !== 2;
          const bv = randn(outF, rng.normal);
          const bias = withBias ? backend.upload(new Uint8Array(bv.buffer), [outF], 'f32', 'weights') : null;
          const out = backend.allocate([T, outF], 'f32', 'activations');
          backend.kernels.get('cpu', 'linear', format)(x, w, bias, out);
          const wf = dequantize(format, wBytes);
          const ys = out.handle as Float32Array;
          for (let t = 0; t < T; t++) {
            for (let o = 0; o < outF; o++) {
              let s = withBias ? bv[o] : 0;
              let mag = 0;
              for (let i = 0; i < inF; i++) {
                s += wf[o * inF + i] * xv[t * inF + i];
                mag += Math.abs(wf[o * inF + i] * xv[t * inF + i]);
              }
              expect(Math.abs(ys[t * outF + o] - s), `seed ${rng.seed} t ${t} o ${o}`).toBeLessThanOrEqual(1e-5 * mag + 1e-6);
            }
          }
        });
      }
    }

    it(`${format} embedding decodes the looked-up rows`, () => {
      const rng = freshRng();
      const vocab = 11;
      const dim = 2 * blockSize;
      const bytes = randomWeights(format, vocab, dim, rng);
      const table = backend.upload(bytes, [vocab, dim], format, 'weights');
      const ids = Int32Array.from([3, 0, 10, 3]);
      const out = backend.allocate([ids.length, dim], 'f32', 'activations');
      backend.kernels.get('cpu', 'embedding', format)(table, ids, out);
      const ref = dequantize(format, bytes);
      for (let t = 0; t < ids.length; t++) {
        expect(Array.from((out.handle as Float32Array).subarray(t * dim, (t + 1) * dim)), `seed ${rng.seed}`).toEqual(Array.from(ref.subarray(ids[t] * dim, (ids[t] + 1) * dim)));
      }
      expect(() => backend.kernels.get('cpu', 'embedding', format)(table, Int32Array.from([vocab]), backend.allocate([1, dim], 'f32', 'activations'))).toThrow(/outside the vocabulary/);
    });
  }

  it('a weight whose rows are not whole blocks is an error', () => {
    expect(() => backend.upload(new Uint8Array(34), [1, 40], 'q8_0', 'weights')).toThrow(/whole blocks/);
  });
});
