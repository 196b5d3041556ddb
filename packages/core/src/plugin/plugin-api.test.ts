import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../backends/cpu/cpu-backend.js';
import { DenseKVCache } from '../kv-cache/dense-kv-cache.js';
import { createPipeline } from '../pipeline/create-pipeline.js';
import type { Tensor } from '../tensor/tensor.js';
import { f32ToF16 } from '../tensor/half.js';
import { maxAbsDiff } from '../testing/random.js';
import { tinyModel } from '../testing/tiny-model.js';
import { definePlugin } from './define-plugin.js';
import { PluginDriver } from './plugin-driver.js';
import type { LithePlugin } from './types.js';

// The attention test wraps core's own kernel.
const denseRef = new CpuBackend().kernels.get('cpu', 'attention', 'dense');
const tiny = tinyModel({ tie_word_embeddings: true });
const greedy = { temperature: 0, maxTokens: 6, stopOnEos: false };

async function run(plugins: LithePlugin[]) {
  const p = await createPipeline({ model: tiny.files, backend: 'cpu', plugins, cacheSize: 64 });
  const r = await p.generate('Once upon a time', greedy).result;
  return { p, r };
}

/** The prompt's logits, every row: compared with a tolerance, since greedy tokens of a random model can flip on near-ties. */
async function promptLogits(p: Awaited<ReturnType<typeof run>>['p']): Promise<Float32Array> {
  const ids = Int32Array.from(p.encode('Once upon a time'));
  return (await p.backend.read(p.model.forward(ids, p.createCache(), { logits: 'all' }))) as Float32Array;
}

const base = await run([]);
const baseline = base.r.tokenIds;
const baselineLogits = await promptLogits(base.p);

describe('plugin hooks are called and honoured', () => {
  it('setup registers kernels into the pipeline only', async () => {
    let adds = 0;
    const counting = definePlugin(() => ({
      name: 'count-add',
      setup(ctx) {
        const add = ctx.kernels.get('cpu', 'add');
        ctx.kernels.register('cpu', 'add', (a, b, out) => (adds++, add(a, b, out)), { override: true });
      },
    }));
    const { r } = await run([counting()]);
    expect(adds).toBeGreaterThan(0);
    expect(r.tokenIds).toEqual(baseline);
    const before = adds;
    await run([]);
    expect(adds).toBe(before);
  });

  it('transformWeights sees every tensor and its result is what the model uses', async () => {
    const seen: string[] = [];
    const toF16 = definePlugin(() => ({
      name: 'to-f16',
      transformWeights(t: Tensor, info) {
        seen.push(info.name);
        if (info.role !== 'linear') return t;
        const src = t.handle as Float32Array;
        const out = t.backend.upload(new Uint8Array(Uint16Array.from(src, f32ToF16).buffer), t.shape, 'f16', 'weights');
        t.dispose();
        return out;
      },
    }));
    const { p, r } = await run([toF16()]);
    expect(seen).toHaveLength(tiny.weights.size);
    expect(p.model.layers[0].q.bytes).toBe(64 * 64 * 2);
    expect(p.backend.memory.snapshot().current.weights).toBe(p.model.weightBytes);
    // f16 rounding moves these logits by ~2e-3; a weight the model did not use, or used wrongly, moves them by O(1).
    const logits = await promptLogits(p);
    const worst = maxAbsDiff(logits, baselineLogits);
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThan(0.05);
    expect(r.tokenIds).toHaveLength(baseline.length);
  });

  it('patchModel can replace a module', async () => {
    let calls = 0;
    const spy = definePlugin(() => ({
      name: 'spy',
      patchModel(model) {
        const inner = model.layers[1].down;
        model.layers[1].down = { ...inner, name: inner.name, inFeatures: inner.inFeatures, outFeatures: inner.outFeatures, bytes: inner.bytes, forward: (x, o) => (calls++, inner.forward(x, o)), dispose: () => inner.dispose() };
      },
    }));
    const { r } = await run([spy()]);
    expect(calls).toBe(1 + r.completionTokens - 1);
    expect(r.tokenIds).toEqual(baseline);
  });

  it('createKVCache provides the cache, and a composing provider wraps it', async () => {
    const made: string[] = [];
    const inner = definePlugin(() => ({
      name: 'inner-cache',
      createKVCache: (spec) => (made.push(`inner:${spec.capacity}`), new DenseKVCache(spec)),
    }));
    const outer = definePlugin(() => ({
      name: 'outer-cache',
      composes: ['inner-cache'],
      createKVCache: (spec, _ctx, next) => (made.push('outer'), next(spec)),
    }));
    const { r } = await run([inner(), outer()]);
    expect(made).toEqual(['outer', 'inner:64']);
    expect(r.tokenIds).toEqual(baseline);
  });

  it('attention provides the kernel for its cache kind', async () => {
    let calls = 0;
    const attn = definePlugin(() => ({
      name: 'attn',
      attention: { kind: 'dense', kernels: { cpu: (q, c, p, o) => (calls++, denseRef(q, c, p, o)) } },
    }));
    const { r } = await run([attn()]);
    expect(calls).toBe(2 * r.completionTokens); // 2 layers, prefill + (n - 1) decode steps
    expect(r.tokenIds).toEqual(baseline);
  });

  it('wrapDecode wraps the decode step', async () => {
    let steps = 0;
    const wrap = definePlugin(() => ({ name: 'wrap', wrapDecode: (next) => async (s) => (steps++, next(s)) }));
    const { r } = await run([wrap()]);
    expect(steps).toBe(r.completionTokens - 1);
    expect(r.tokenIds).toEqual(baseline);
  });

  it('processLogits changes what is sampled', async () => {
    const ban = definePlugin((id: number) => ({ name: 'ban', processLogits: (logits) => void (logits[id] = -Infinity) }));
    const { r } = await run([ban(baseline[0])]);
    expect(r.tokenIds).not.toContain(baseline[0]);
    const force = definePlugin((id: number) => ({ name: 'force', processLogits: (logits) => (logits.fill(-Infinity), void (logits[id] = 0)) }));
    expect((await run([force(1234)])).r.tokenIds).toEqual([1234, 1234, 1234, 1234, 1234, 1234]);
  });

  it('event observers receive every token', async () => {
    const ids: (number | null)[] = [];
    let prefills = 0;
    const obs = definePlugin(() => ({ name: 'obs', on: { token: (e) => void ids.push(e.id), prefill: () => void prefills++ } }));
    const { r } = await run([obs()]);
    expect(ids).toEqual(r.tokenIds);
    expect(prefills).toBe(1);
  });
});


describe('plugin registration fails early with a clear message', () => {
  const p = (o: Partial<LithePlugin> & { name: string }): LithePlugin => o;
  it('duplicate names', () => expect(() => new PluginDriver([p({ name: 'a' }), p({ name: 'a' })])).toThrow("plugin 'a' is listed twice"));
  it('missing dependency', () => expect(() => new PluginDriver([p({ name: 'a', dependencies: ['b'] })])).toThrow("plugin 'a' needs plugin 'b'"));
  it('conflicts', () => expect(() => new PluginDriver([p({ name: 'a', conflicts: ['b'] }), p({ name: 'b' })])).toThrow("'a' and 'b' cannot be used together"));
  it('two KV cache providers without composes', () => {
    const c = () => new DenseKVCache({ backend: new CpuBackend(), nLayers: 1, nKVHeads: 1, headDim: 2, capacity: 1 });
    expect(() => new PluginDriver([p({ name: 'a', createKVCache: c }), p({ name: 'b', createKVCache: c })])).toThrow(/both provide createKVCache.*composes: \['a'\]/);
  });
  it('two attention providers for one cache kind', () => {
    const attention = { kernels: {} };
    expect(() => new PluginDriver([p({ name: 'a', attention }), p({ name: 'b', attention })])).toThrow(/both provide attention/);
    expect(() => new PluginDriver([p({ name: 'a', attention }), p({ name: 'b', attention: { kind: 'int8', kernels: {} } })])).not.toThrow();
  });
  it('a reader of quantized layers sits beside the cache kind\'s provider in either order; two readers must compose', () => {
    const reader = p({ name: 'reader', attention: { kernels: {}, readsQuantized: { cpu: denseRef } } });
    const quant = p({ name: 'quant', attention: { kind: 'int8', kernels: { cpu: denseRef } } });
    expect(() => new PluginDriver([reader, quant])).not.toThrow();
    expect(() => new PluginDriver([quant, reader])).not.toThrow();
    const other = p({ name: 'other', attention: { kind: 'int4', kernels: {}, readsQuantized: {} } });
    expect(() => new PluginDriver([reader, other])).toThrow(/'reader' and 'other' both provide attention/);
  });
  it("orders 'pre' first and 'post' last", () => {
    const d = new PluginDriver([p({ name: 'x', enforce: 'post' }), p({ name: 'y' }), p({ name: 'z', enforce: 'pre' })]);
    expect(d.plugins.map((q) => q.name)).toEqual(['z', 'y', 'x']);
  });
  it('definePlugin needs a name', () => expect(() => definePlugin(() => ({ name: '' }))()).toThrow(/non-empty/));
  it('plugins are validated before the model loads', async () => {
    await expect(createPipeline({ model: '/nonexistent', plugins: [p({ name: 'a', dependencies: ['kv-quant'] })] })).rejects.toThrow(/needs plugin 'kv-quant'/);
  });
});

describe('a weight transform may turn a linear weight into a module', () => {
  it('the model uses the module the transform built', async () => {
    let calls = 0;
    const wrap = definePlugin(() => ({
      name: 'wrap-linear',
      transformWeights(t: Tensor, info) {
        if (info.name !== 'model.layers.0.mlp.up_proj.weight') return t;
        const [outFeatures, inFeatures] = t.shape;
        const inner = t.backend.kernels.get('cpu', 'linear', 'f32');
        return { name: 'custom-up', inFeatures, outFeatures, bytes: t.byteLength, forward: (x: Tensor, o: Tensor) => (calls++, inner(x, t, null, o)), dispose: () => t.dispose() };
      },
    }));
    const { p, r } = await run([wrap()]);
    expect(p.model.layers[0].up.name).toBe('custom-up');
    expect(calls).toBe(r.completionTokens);
    expect(r.tokenIds).toEqual(baseline);
  });
});

describe('loadWeight loads what the default loader cannot; a module owns its bias', () => {
  it('the first loader that knows a weight wins, and the model uses what it built', async () => {
    const asked: string[] = [];
    const loader = definePlugin((answer: boolean) => ({
      name: `loader-${answer}`,
      async loadWeight(req, source, ctx) {
        asked.push(`${answer}:${req.name}`);
        if (!answer || req.name !== 'model.layers.1.mlp.gate_proj.weight') return undefined;
        expect([...source.names()]).toContain(req.name);
        const t = ctx.backend.upload(await source.read(req.name), req.shape, 'f32', 'weights');
        return t;
      },
    }));
    const { r } = await run([loader(false), loader(true)]);
    expect(asked.filter((a) => a.endsWith('gate_proj.weight'))).toEqual(['false:model.layers.0.mlp.gate_proj.weight', 'true:model.layers.0.mlp.gate_proj.weight', 'false:model.layers.1.mlp.gate_proj.weight', 'true:model.layers.1.mlp.gate_proj.weight']);
    expect(r.tokenIds).toEqual(baseline);
  });

  it('rejects a loaded weight of the wrong shape', async () => {
    const bad = definePlugin(() => ({ name: 'bad', loadWeight: (req, _s, ctx) => (req.role === 'norm' ? ctx.backend.allocate([3], 'f32', 'weights') : undefined) }));
    await expect(createPipeline({ model: tiny.files, plugins: [bad()] })).rejects.toThrow(/returned 'model.layers.0.input_layernorm.weight' with shape \[3\]/);
  });

  it('a q/k/v weight turned into a module receives its bias (Qwen2)', async () => {
    const qwen = tinyModel({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' });
    const plain = await (await createPipeline({ model: qwen.files })).generate('Once upon a time', greedy).result;
    const biases: string[] = [];
    const asModules = definePlugin(() => ({
      name: 'modules',
      transformWeights(t: Tensor, info) {
        if (info.role !== 'linear' || !info.bias) return t;
        biases.push(info.name);
        const [outFeatures, inFeatures] = t.shape;
        const k = t.backend.kernels.get('cpu', 'linear', 'f32');
        const bias = info.bias;
        return { name: info.name, inFeatures, outFeatures, bytes: t.byteLength + bias.byteLength, forward: (x: Tensor, o: Tensor) => k(x, t, bias, o), dispose: () => (t.dispose(), bias.dispose()) };
      },
    }));
    const p = await createPipeline({ model: qwen.files, plugins: [asModules()] });
    expect(biases).toHaveLength(6); // q, k and v of two layers
    expect((await p.generate('Once upon a time', greedy).result).tokenIds).toEqual(plain.tokenIds);
  });
});
