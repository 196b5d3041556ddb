import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CpuBackend, dequantizeGroupedInt, f16ToF32, GroupedIntLinear, memoryByteSource, parseSafetensors, type GroupedIntBits } from '@lithe/core';
import { freshRng, randn } from '@lithe/core/testing';
import { fromAutoGptq, toAutoGptq, toGroupedInt, type AutoGptqTensors } from './checkpoint.js';
import { dequantizeLinear, gptqQuantize, rtnQuantize, type QuantizedLinear } from './gptq.js';
import { HessianAccumulator } from './hessian.js';

const fixture = new URL('../../../tooling/fixtures/gptq/autogptq-layer.safetensors', import.meta.url);

async function readFixture() {
  const bytes = new Uint8Array(readFileSync(fixture));
  const file = await parseSafetensors(memoryByteSource('autogptq-layer.safetensors', bytes));
  const get = async (name: string) => (await file.read(name)).slice();
  const layers = [];
  for (const name of ['l4', 'l3', 'l8', 'l2']) {
    const p = `model.layers.0.${name}`;
    const [bits, group, actOrder] = new Int32Array((await get(`${p}.config`)).buffer);
    const t: AutoGptqTensors = {
      qweight: new Int32Array((await get(`${p}.qweight`)).buffer),
      qzeros: new Int32Array((await get(`${p}.qzeros`)).buffer),
      scales: new Uint16Array((await get(`${p}.scales`)).buffer),
      gIdx: new Int32Array((await get(`${p}.g_idx`)).buffer),
    };
    const expected = new Float32Array((await get(`${p}.expected`)).buffer);
    layers.push({ name, bits, group, actOrder: actOrder === 1, t, expected, outF: 64, inF: 96 });
  }
  return layers;
}

describe('AutoGPTQ checkpoints packed by PyTorch (tooling/fixtures/gptq/make_gptq_fixtures.py)', () => {
  it('load to exactly the weights AutoGPTQ unpacks, act-order and 2/3/8 bits included', async () => {
    for (const l of await readFixture()) {
      const d = fromAutoGptq(l.t, l.outF, l.inF, { groupSize: l.group });
      expect(d.bits).toBe(l.bits);
      expect(d.perm !== null).toBe(l.actOrder);
      expect(Array.from(dequantizeGroupedInt(d))).toEqual(Array.from(l.expected));
    }
  });

  it('and run through the kernel as the f64 product with those weights', async () => {
    const backend = new CpuBackend();
    const rng = freshRng();
    for (const l of await readFixture()) {
      const lin = GroupedIntLinear.fromData(l.name, backend, fromAutoGptq(l.t, l.outF, l.inF, { groupSize: l.group }));
      const x = randn(3 * l.inF, rng.normal);
      const out = backend.allocate([3, l.outF], 'f32', 'activations');
      lin.forward(backend.upload(new Uint8Array(x.buffer), [3, l.inF], 'f32', 'activations'), out);
      const ys = out.handle as Float32Array;
      for (let t = 0; t < 3; t++) {
        for (let o = 0; o < l.outF; o++) {
          let ref = 0, mag = 0;
          for (let i = 0; i < l.inF; i++) {
            ref += x[t * l.inF + i] * l.expected[o * l.inF + i];
            mag += Math.abs(x[t * l.inF + i] * l.expected[o * l.inF + i]);
          }
          expect(Math.abs(ys[t * l.outF + o] - ref), `seed ${rng.seed}`).toBeLessThanOrEqual(3e-6 * mag);
        }
      }
    }
  });

  it('are written back byte for byte by toAutoGptq', async () => {
    for (const l of await readFixture()) {
      const d = fromAutoGptq(l.t, l.outF, l.inF, { groupSize: l.group });
      // The fixture's codes, zeros and scales in input order, as a quantizer would return them.
      const w = dequantizeGroupedInt(d);
      const groups = d.scales.length / l.outF;
      const q: QuantizedLinear = {
        bits: l.bits as GroupedIntBits, outFeatures: l.outF, inFeatures: l.inF, groupSize: d.groupSize, loss: 0,
        codes: new Uint8Array(l.outF * l.inF), scales: new Float32Array(groups * l.outF), zeros: new Uint8Array(groups * l.outF), gIdx: l.t.gIdx,
      };
      for (let o = 0; o < l.outF; o++) {
        for (let g = 0; g < groups; g++) {
          q.scales[g * l.outF + o] = f16ToF32(d.scales[o * groups + g]);
          q.zeros[g * l.outF + o] = d.zeros[o * groups + g];
        }
        for (let i = 0; i < l.inF; i++) {
          const k = l.t.gIdx[i] * l.outF + o;
          q.codes[o * l.inF + i] = Math.round(w[o * l.inF + i] / q.scales[k]) + q.zeros[k];
        }
      }
      const back = toAutoGptq(q);
      expect(Array.from(back.qweight)).toEqual(Array.from(l.t.qweight));
      expect(Array.from(back.qzeros)).toEqual(Array.from(l.t.qzeros));
      expect(Array.from(back.scales)).toEqual(Array.from(l.t.scales));
    }
  });
});

const seed = freshRng().seed;

describe(`GPTQ results through the checkpoint layout (seed ${seed})`, () => {
  const cases: [GroupedIntBits, number, boolean, boolean][] = [[4, 32, true, false], [3, 64, false, true], [2, -1, true, false], [8, 32, false, false], [4, 128, true, true]];
  for (const [bits, groupSize, actOrder, sym] of cases) {
    it(`${bits} bits, group ${groupSize}${actOrder ? ', act-order' : ''}${sym ? ', sym' : ''}: write, read, same weights (both formats)`, () => {
      const rng = freshRng(seed + bits * 100 + groupSize);
      const outF = 64, inF = 192;
      const w = randn(outF * inF, rng.normal, 0.05);
      const acc = new HessianAccumulator(inF);
      acc.add(randn(50 * inF, rng.normal), 50);
      const q = gptqQuantize(w, outF, inF, acc.value(), { bits, groupSize, actOrder, sym });
      const ref = Float32Array.from(dequantizeLinear(q));
      for (const format of ['gptq', 'gptq_v2'] as const) {
        const d = fromAutoGptq(toAutoGptq(q, format), outF, inF, { format, groupSize });
        // Per-channel act-order needs no permutation at inference: every column is in group 0.
        expect(d.perm !== null).toBe(actOrder && groupSize !== -1);
        expect(Array.from(dequantizeGroupedInt(d))).toEqual(Array.from(ref));
      }
      expect(Array.from(dequantizeGroupedInt(toGroupedInt(q)))).toEqual(Array.from(ref));
    });
  }

  it('keeps a zero point of 0 from spilling into its neighbours (stored as −1, masked)', () => {
    const outF = 32, inF = 32;
    const w = new Float32Array(outF * inF).map((_, i) => 0.01 + (i % 7) * 0.01); // all positive: asymmetric zero = 0
    const q = rtnQuantize(w, outF, inF, { bits: 4, groupSize: -1 });
    expect(Math.min(...q.zeros)).toBe(0);
    const d = fromAutoGptq(toAutoGptq(q), outF, inF, { groupSize: -1 });
    expect(Array.from(dequantizeGroupedInt(d))).toEqual(Array.from(Float32Array.from(dequantizeLinear(q))));
  });

  it('explains shapes the layout cannot hold', () => {
    const q = rtnQuantize(new Float32Array(24 * 32), 24, 32, { bits: 4, groupSize: -1 });
    expect(() => toAutoGptq(q, 'gptq', 'q_proj')).toThrow(/q_proj: .*multiples of 32 \(this layer is \[24, 32\]\)/);
    const t = toAutoGptq(rtnQuantize(new Float32Array(32 * 64), 32, 64, { bits: 4, groupSize: 32 }));
    expect(() => fromAutoGptq(t, 32, 64, { groupSize: 16 })).toThrow(/scales has 2 rows, but 64 inputs in groups of 16 make 4/);
    expect(() => fromAutoGptq({ ...t, qweight: t.qweight.subarray(8) }, 32, 64)).toThrow(/not 2, 3, 4 or 8 bits/);
  });
});
