/**
 * The wasm grouped int kernel (wasm/grouped-int.ts) against the TypeScript kernel of the CPU
 * backend, on fresh random codes, scales, zeros and permutations, 1 and 2 threads, 1, 2 and 5 rows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../backend/backend.js';
import { GroupedIntLinear } from '../../model/grouped-int-linear.js';
import { groupCount, packGroupedCodes, type GroupedIntBits, type GroupedIntData } from '../../quant/grouped-int.js';
import { f32ToF16 } from '../../tensor/half.js';
import { freshRng, randn } from '../../testing/random.js';
import { CpuBackend } from '../cpu/cpu-backend.js';
import { WasmBackend } from './wasm-backend.js';

const rng = freshRng();
const cpu = new CpuBackend();

function randomData(bits: GroupedIntBits, outF: number, inF: number, groupSize: number, permuted: boolean): GroupedIntData {
  const groups = groupCount(inF, groupSize);
  const maxq = 2 ** bits - 1;
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
    codes: packGroupedCodes(Array.from({ length: outF * inF }, () => Math.floor(rng.uniform() * (maxq + 1))), outF, inF, bits),
    scales: Uint16Array.from({ length: outF * groups }, () => f32ToF16(0.01 + 0.05 * rng.uniform())),
    zeros: Uint8Array.from({ length: outF * groups }, () => Math.floor(rng.uniform() * (maxq + 1))),
  };
}

function run(be: Backend, d: GroupedIntData, x: Float32Array, bias: Float32Array | null): Float32Array {
  const inF = d.inFeatures;
  const T = x.length / inF;
  const b = bias ? be.upload(new Uint8Array(bias.slice().buffer), [bias.length], 'f32', 'weights') : null;
  const m = GroupedIntLinear.fromData('w', be, d, b);
  const y = be.allocate([T, d.outFeatures], 'f32', 'activations');
  m.forward(be.upload(new Uint8Array(x.slice().buffer), [T, inF], 'f32', 'activations'), y);
  const out = Float32Array.from(y.handle as Float32Array);
  m.dispose();
  return out;
}

for (const threads of [1, 2]) {
  describe(`wasm grouped int kernel, ${threads} thread(s), against the TypeScript one (seed ${rng.seed})`, () => {
    let wasm: WasmBackend;
    beforeAll(async () => {
      wasm = await WasmBackend.create({ threads, minParallelWork: 0 });
    });
    afterAll(() => wasm.close());

    // SIMD path (4 bits, groups of 32k) and the fallbacks (other widths, odd groups).
    const cases: [GroupedIntBits, number, number, number, boolean][] = [
      [4, 13, 64, 32, false], [4, 37, 128, 128, true], [4, 5, 96, 96, true], [4, 19, 256, 64, false],
      [3, 7, 45, 16, true], [4, 6, 40, 8, false], [8, 9, 48, 16, true],
    ];
    for (const [bits, outF, inF, G, permuted] of cases) {
      it.each([1, 2, 5])(`${bits} bits [${outF}, ${inF}] group ${G}${permuted ? ', permuted' : ''} on %i rows`, (T) => {
        const d = randomData(bits, outF, inF, G, permuted);
        const x = randn(T * inF, rng.normal);
        for (const bias of [null, randn(outF, rng.normal)]) {
          const a = run(wasm, d, x, bias);
          const b = run(cpu, d, x, bias);
          for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(b[i])) * Math.sqrt(inF));
        }
      });
    }
  });
}
