import { describe, expect, it } from 'vitest';
import { GroupedIntLinear } from '../../../model/grouped-int-linear.js';
import { dequantizeGroupedInt, groupCount, packGroupedCodes, type GroupedIntBits, type GroupedIntData } from '../../../quant/grouped-int.js';
import { f32ToF16 } from '../../../tensor/half.js';
import { freshRng, randn } from '../../../testing/random.js';
import { webGpuForTests } from '../testing.js';

const { backend: gpu } = await webGpuForTests();
const seed = freshRng().seed;

function randomData(rng: ReturnType<typeof freshRng>, bits: GroupedIntBits, outF: number, inF: number, groupSize: number, permuted: boolean): GroupedIntData {
  const groups = groupCount(inF, groupSize);
  const maxq = 2 ** bits - 1;
  const codes = Array.from({ length: outF * inF }, () => Math.floor(rng.uniform() * (maxq + 1)));
  let perm: Int32Array | null = null;
  if (permuted) {
    perm = Int32Array.from({ length: inF }, (_, i) => i);
    for (let i = inF - 1; i > 0; i--) {
      const j = Math.floor(rng.uniform() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
  }
  return {
    bits, outFeatures: outF, inFeatures: inF, groupSize, perm,
    codes: packGroupedCodes(codes, outF, inF, bits),
    scales: Uint16Array.from({ length: outF * groups }, () => f32ToF16(0.01 + 0.05 * rng.uniform())),
    zeros: Uint8Array.from({ length: outF * groups }, () => Math.floor(rng.uniform() * (maxq + 1))),
  };
}

describe.skipIf(!gpu)(`grouped int linear kernel (WebGPU) against dequantize + f64 matmul (seed ${seed})`, () => {
  const cases: [GroupedIntBits, number, number, number, boolean][] = [
    [4, 13, 64, 32, false], [4, 7, 96, 32, true], [3, 5, 45, 16, true], [2, 9, 70, 64, false], [8, 3, 37, 37, true], [3, 6, 128, 128, false],
  ];
  for (const [bits, N, K, G, permuted] of cases) {
    it(`${bits} bits [${N}, ${K}] group ${G}${permuted ? ' permuted' : ''}, T = 1, 3, 11, with bias`, async () => {
      const rng = freshRng(seed + bits * 100 + N);
      const b = gpu!;
      const d = randomData(rng, bits, N, K, G, permuted);
      const wd = dequantizeGroupedInt(d);
      const bias = randn(N, rng.normal);
      const m = GroupedIntLinear.fromData('w', b, d, b.upload(new Uint8Array(bias.slice().buffer), [N], 'f32', 'weights'));
      for (const T of [1, 3, 11]) {
        const x = randn(T * K, rng.normal);
        const out = b.allocate([T, N], 'f32', 'activations');
        m.forward(b.upload(new Uint8Array(x.slice().buffer), [T, K], 'f32', 'activations'), out);
        const y = (await b.read(out)) as Float32Array;
        for (let t = 0; t < T; t++) {
          for (let n = 0; n < N; n++) {
            let s = bias[n], mag = Math.abs(bias[n]);
            for (let k = 0; k < K; k++) {
              s += x[t * K + k] * wd[n * K + k];
              mag += Math.abs(x[t * K + k] * wd[n * K + k]);
            }
            expect(Math.abs(y[t * N + n] - s)).toBeLessThanOrEqual(1e-5 * mag + 1e-6);
          }
        }
        out.dispose();
      }
      m.dispose();
    });
  }
});
