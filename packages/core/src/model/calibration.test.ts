import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../backends/cpu/cpu-backend.js';
import { loadHFDir } from '../io/hf-dir.js';
import { DenseKVCache } from '../kv-cache/dense-kv-cache.js';
import { hfWeightSource } from '../pipeline/weight-source.js';
import type { Tensor } from '../tensor/tensor.js';
import { freshRng, maxAbsDiff } from '../testing/random.js';
import { tinyModel } from '../testing/tiny-model.js';
import { calibrate, calibrationWindows, INPUT_OF, LINEAR_INPUTS, LINEAR_SLOTS, type LinearInput, type LinearSlot } from './calibration.js';
import { parseConfig } from './config.js';
import { DenseLinear, type LinearModule } from './linear-module.js';
import { LlamaModel } from './llama.js';
import { loadLlamaWeights } from './weights.js';

async function build(overrides: Record<string, unknown>, seed: number, maxChunk?: number) {
  const tiny = tinyModel({ num_hidden_layers: 3, ...overrides }, 'F32', seed);
  const dir = await loadHFDir(tiny.files);
  const config = parseConfig(dir.config);
  const backend = new CpuBackend();
  const model = new LlamaModel(config, backend, await loadLlamaWeights(backend, hfWeightSource(dir), config), maxChunk);
  return { model, backend, config };
}

type Inputs = Map<string, Float32Array[]>;
const key = (l: number, input: LinearInput) => `${l}.${input}`;

/** Every linear's input in every block, recorded during ordinary full forwards (one per window). */
function recordFullForwards(model: LlamaModel, windows: Int32Array[]): Inputs {
  const seen: Inputs = new Map();
  const c = model.config;
  const saved = model.layers.map((l) => ({ ...l }));
  model.layers.forEach((layer, l) => {
    for (const slot of ['q', 'o', 'gate', 'down'] as LinearSlot[]) {
      const inner = layer[slot]!;
      const input = INPUT_OF[slot];
      const spy: LinearModule = {
        name: inner.name, inFeatures: inner.inFeatures, outFeatures: inner.outFeatures, bytes: inner.bytes,
        forward(x: Tensor, out: Tensor) {
          const list = seen.get(key(l, input)) ?? [];
          list.push((x.handle as Float32Array).slice());
          seen.set(key(l, input), list);
          inner.forward(x, out);
        },
        dispose: () => inner.dispose(),
      };
      layer[slot] = spy;
    }
  });
  const cache = new DenseKVCache({ backend: model.backend, nLayers: c.nLayers, nKVHeads: c.nKVHeads, headDim: c.headDim, capacity: 64 });
  for (const w of windows) {
    cache.reset();
    model.forward(w, cache);
  }
  model.layers.forEach((layer, l) => Object.assign(layer, saved[l]));
  return seen;
}

const seed = freshRng().seed;

describe(`calibration pass (seed ${seed})`, () => {
  it('takes evenly spaced windows and explains a text that is too short', () => {
    const ids = Array.from({ length: 20 }, (_, i) => i);
    expect(calibrationWindows(ids, 3, 8).map((w) => w[0])).toEqual([0, 6, 12]);
    expect(Array.from(calibrationWindows(ids, 1, 20)[0])).toEqual(ids);
    expect(() => calibrationWindows(ids, 2, 21)).toThrow(/20 tokens, fewer than one window of 21/);
  });

  for (const [name, overrides, maxChunk] of [['llama', {}, undefined], ['qwen2 biases, chunks of 5', { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' }, 5]] as const) {
    it(`${name}: with nothing replaced, each block sees exactly the inputs of a full forward`, async () => {
      const rng = freshRng(seed);
      const { model } = await build(overrides, seed, maxChunk);
      const windows = Array.from({ length: 3 }, () => Int32Array.from({ length: 11 }, () => 1 + Math.floor(rng.uniform() * 31999)));
      const ref = recordFullForwards(model, windows);
      const got: Inputs = new Map();
      let blocks = 0;
      await calibrate(model, windows, {
        block: (l) => ({
          observe(input, x, rows) {
            const k = key(l, input);
            const prev = got.get(k) ?? [];
            expect(x.length).toBeGreaterThanOrEqual(rows);
            prev.push(x.slice(0, x.length));
            got.set(k, prev);
          },
          finish: () => ({}),
        }),
      }, { onBlock: (done) => (blocks = done) });
      expect(blocks).toBe(3);
      for (let l = 0; l < 3; l++) {
        for (const input of LINEAR_INPUTS) {
          const a = Float32Array.from(ref.get(key(l, input))!.flatMap((x) => Array.from(x)));
          const b = Float32Array.from(got.get(key(l, input))!.flatMap((x) => Array.from(x)));
          expect(b.length).toBe(a.length);
          expect(maxAbsDiff(a, b)).toBeLessThan(1e-5);
        }
      }
    });
  }

  it('feeds block l + 1 the outputs of block l after its replacement, and installs the replacements', async () => {
    const rng = freshRng(seed + 1);
    const { model, backend } = await build({}, seed + 1);
    const windows = Array.from({ length: 2 }, () => Int32Array.from({ length: 9 }, () => 1 + Math.floor(rng.uniform() * 31999)));
    const qkvSeen = new Map<number, Float32Array[]>();
    const replacements: LinearModule[] = [];
    await calibrate(model, windows, {
      block: (l, layer) => ({
        observe(input, x) {
          if (input === 'qkv') qkvSeen.set(l, [...(qkvSeen.get(l) ?? []), x.slice()]);
        },
        finish() {
          // Shrink every weight by 0.8: a different block whose effect must reach the next block.
          const out: Partial<Record<LinearSlot, LinearModule>> = {};
          for (const slot of LINEAR_SLOTS) {
            const m = layer[slot] as DenseLinear;
            const w = (m.weight.handle as Float32Array).map((v) => v * 0.8);
            const bias = m.bias ? backend.upload(new Uint8Array((m.bias.handle as Float32Array).slice().buffer), m.bias.shape, 'f32', 'weights') : null;
            out[slot] = new DenseLinear(m.name, backend, backend.upload(new Uint8Array(w.buffer), m.weight.shape, 'f32', 'weights'), bias);
            replacements.push(out[slot]);
          }
          return out;
        },
      }),
    });
    for (const layer of model.layers) for (const slot of LINEAR_SLOTS) expect(replacements).toContain(layer[slot]);
    // The final model has every block replaced; block l's q/k/v input depends only on blocks < l,
    // all of which were replaced when block l was observed.
    const ref = recordFullForwards(model, windows);
    for (let l = 0; l < 3; l++) {
      const a = ref.get(key(l, 'qkv'))!;
      const b = qkvSeen.get(l)!;
      for (let w = 0; w < windows.length; w++) expect(maxAbsDiff(a[w], b[w])).toBeLessThan(1e-5);
    }
  });

  it("probes the block's output with its current modules, leaving its inputs as they were", async () => {
    const rng = freshRng(seed + 3);
    const { model, backend, config: c } = await build({}, seed + 3);
    const windows = Array.from({ length: 2 }, () => Int32Array.from({ length: 7 }, () => 1 + Math.floor(rng.uniform() * 31999)));
    // Reference: block 1 run by hand on block 0's outputs.
    const ref: Float32Array[] = [];
    const cache = new DenseKVCache({ backend, nLayers: 1, nKVHeads: c.nKVHeads, headDim: c.headDim, capacity: 7 });
    for (const ids of windows) {
      const x = backend.allocate([7, c.hiddenSize], 'f32', 'activations');
      model.embedTokens(ids, x);
      for (const l of [0, 1]) {
        cache.reset();
        model.forwardBlock(l, x, cache);
      }
      ref.push((x.handle as Float32Array).slice(0, 7 * c.hiddenSize));
      x.dispose();
    }
    cache.dispose();
    const n = 7 * c.hiddenSize;
    let checked = false;
    await calibrate(model, windows, {
      block: (l, layer) => ({
        observe() {},
        finish(probe) {
          if (l !== 1) return {};
          expect([probe.windows, probe.seqLen]).toEqual([2, 7]);
          const a = probe.run();
          expect(a.length).toBe(2 * n);
          for (let w = 0; w < 2; w++) expect(maxAbsDiff(a.subarray(w * n, (w + 1) * n), ref[w])).toBeLessThan(1e-5);
          // A changed module changes the output; putting it back restores it (the inputs are intact).
          const down = layer.down;
          const m = down as DenseLinear;
          const w2 = (m.weight.handle as Float32Array).map((v) => v * 2);
          layer.down = new DenseLinear('down', backend, backend.upload(new Uint8Array(w2.buffer), m.weight.shape, 'f32', 'weights'));
          const changed = probe.run(1);
          expect(changed.length).toBe(n);
          expect(maxAbsDiff(changed, ref[0])).toBeGreaterThan(1e-3);
          layer.down.dispose();
          layer.down = down;
          expect(maxAbsDiff(probe.run(2, new Float32Array(2 * n)), a)).toBe(0);
          expect(() => probe.run(3)).toThrow(/windows must be 1..2, got 3/);
          checked = true;
          return {};
        },
      }),
    });
    expect(checked).toBe(true);
  });

  it('refuses a replacement of the wrong shape', async () => {
    const { model, backend } = await build({}, seed + 2);
    const w = backend.allocate([3, 64], 'f32', 'weights');
    await expect(calibrate(model, [Int32Array.from([1, 2, 3])], { block: () => ({ observe() {}, finish: () => ({ q: new DenseLinear('q', backend, w) }) }) })).rejects.toThrow(/block 0's q was replaced by a 3 × 64 module; it is 64 × 64/);
  });
});
