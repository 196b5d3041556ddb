import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { globalKernels } from '../../backend/kernel-registry.js';
import type { ModelFiles } from '../../io/hf-dir.js';
import { createPipeline } from '../../pipeline/create-pipeline.js';
import type { Pipeline } from '../../pipeline/pipeline.js';
import { registerDType } from '../../tensor/dtype.js';
import type { Tensor } from '../../tensor/tensor.js';
import { tinyModel } from '../../testing/tiny-model.js';
import { CpuBackend } from '../cpu/cpu-backend.js';
import { createBackend } from '../create-backend.js';
import { mayHaveHardwareGpu } from './device.js';
import { webGpuForTests } from './testing.js';
import { gpuOf, type WebGpuBackend } from './webgpu-backend.js';

const root = (p: string) => fileURLToPath(new URL(`../../../../../${p}`, import.meta.url));
const FIXTURE = root('tooling/fixtures/models/tiny-brown');
const HELDOUT = root('tooling/fixtures/data/brown-heldout.txt');
const heldOut = existsSync(HELDOUT) ? readFileSync(HELDOUT, 'utf8') : 'The jury further said in term-end presentments that the City Executive Committee, which had over-all charge of the election, deserves the praise and thanks of the City of Atlanta for the manner in which the election was conducted.';

const { backend: probe, reason } = await webGpuForTests();
const pipelines: Pipeline[] = [];
afterAll(() => pipelines.forEach((p) => p.dispose()));

async function pair(model: string | ModelFiles, gpuOpts: Parameters<typeof webGpuForTests>[0] = {}, cacheSize = 160): Promise<[Pipeline, Pipeline, WebGpuBackend]> {
  const gpu = (await webGpuForTests(gpuOpts)).backend!;
  // f32 keys and values: a 1e-7 difference between the backends' f32 keys can round to neighbouring
  // f16 values, which the strict logit comparisons below would see (conformance checks the f16 cache).
  const cpu = await createPipeline({ model, backend: 'cpu', cacheSize, kvDtype: 'f32' });
  const onGpu = await createPipeline({ model, backend: gpu, cacheSize, kvDtype: 'f32' });
  pipelines.push(cpu, onGpu);
  return [cpu, onGpu, gpu];
}

const prompt = 'The jury said that';

describe.skipIf(!probe)(`a whole model on WebGPU against the CPU backend${probe ? '' : ` (skipped: ${reason})`}`, () => {
  it.each([
    ['llama f32', {}, 'F32' as const, {}],
    ['qwen2-style (q/k/v bias, tied embeddings, sliding window) in bf16', { model_type: 'qwen2', tie_word_embeddings: true, sliding_window: 6, use_sliding_window: true }, 'BF16' as const, {}],
    ['llama f16, the embedding and lm_head split over 1 MiB buffers', { num_attention_heads: 2, num_key_value_heads: 1 }, 'F16' as const, { maxBindingBytes: 2 ** 20 }],
  ])('%s: the same greedy tokens and logits within 1e-4', async (_, config, dtype, gpuOpts: { maxBindingBytes?: number }) => {
    const m = tinyModel(config, dtype);
    const [cpu, gpu, backend] = await pair(m.files, gpuOpts);
    const a = await cpu.generate(prompt, { maxTokens: 32, temperature: 0, stopOnEos: false }).result;
    const b = await gpu.generate(prompt, { maxTokens: 32, temperature: 0, stopOnEos: false }).result;
    expect(b.tokenIds).toEqual(a.tokenIds);
    if (gpuOpts.maxBindingBytes) expect((gpu.model.embed.handle as { segments: unknown[] }).segments.length).toBeGreaterThan(1);

    // Logits of every position of a prompt, and of a sampled continuation (logits read back each step).
    const ids = cpu.encode(heldOut).slice(0, 40);
    const logits = async (p: Pipeline) => {
      const cache = p.createCache(64);
      const out = (await p.backend.read(p.model.forward(Int32Array.from(ids), cache, { logits: 'all' }))) as Float32Array;
      cache.dispose();
      return out;
    };
    const [la, lb] = [await logits(cpu), await logits(gpu)];
    let worst = 0;
    for (let i = 0; i < la.length; i++) worst = Math.max(worst, Math.abs(la[i] - lb[i]));
    expect(worst).toBeLessThan(1e-4);
    // top-k keeps the draw away from near-ties: over a random model's almost uniform 32000 tokens, a
    // 1e-6 logit difference moves a cumulative boundary past the draw now and then (a neighbouring id).
    const sampled = { maxTokens: 8, temperature: 0.8, topK: 40, seed: 3, stopOnEos: false };
    const sa = await cpu.generate(prompt, sampled).result;
    const sb = await gpu.generate(prompt, sampled).result;
    expect(sb.tokenIds).toEqual(sa.tokenIds);
    expect(backend.stats.submissions).toBeGreaterThan(0);
  });

  it('decodes greedily with one submission and one 4-byte read-back per token, and sampling reads the logits row', async () => {
    const [, gpu, backend] = await pair(tinyModel().files);
    await gpu.generate(prompt, { maxTokens: 2, temperature: 0 }).result; // compile the pipelines
    const before = { ...backend.stats };
    const r = await gpu.generate(prompt, { maxTokens: 17, temperature: 0, stopOnEos: false }).result;
    const steps = r.completionTokens; // the prefill and 16 decode steps
    expect(backend.stats.submissions - before.submissions).toBe(steps);
    expect(backend.stats.readbacks - before.readbacks).toBe(steps);
    expect(backend.stats.readbackBytes - before.readbackBytes).toBe(4 * steps);

    const s0 = { ...backend.stats };
    await gpu.generate(prompt, { maxTokens: 5, temperature: 0.7, seed: 1, stopOnEos: false }).result;
    expect(backend.stats.readbacks - s0.readbacks).toBe(5);
    expect(backend.stats.readbackBytes - s0.readbackBytes).toBe(5 * 4 * gpu.config.vocabSize);
  });

  it('perplexity within 0.1% of the CPU backend, across chunks and windows', async () => {
    const [cpu, gpu] = await pair(tinyModel({}, 'F16').files);
    const text = heldOut.slice(0, 900);
    const a = await cpu.perplexity(text, { context: 96 });
    const b = await gpu.perplexity(text, { context: 96 });
    expect(b.tokens).toBe(a.tokens);
    expect(Math.abs(b.perplexity - a.perplexity) / a.perplexity).toBeLessThan(1e-3);
  });

  it('counts memory by use on the GPU: weights, KV cache, activations, peak; the pool does not count twice', async () => {
    const [cpu, gpu, backend] = await pair(tinyModel().files);
    const mem = backend.memory.snapshot();
    expect(mem.current.weights).toBe(gpu.model.weightBytes);
    expect(mem.current.weights).toBe(cpu.backend.memory.snapshot().current.weights);
    await gpu.generate(prompt, { maxTokens: 4, temperature: 0 }).result;
    const after = backend.memory.snapshot();
    const c = gpu.config;
    expect(after.current.kv).toBe(2 * c.nLayers * 160 * c.nKVHeads * c.headDim * 4);
    expect(after.current.activations).toBeGreaterThan(0);
    expect(after.peakTotal).toBeGreaterThanOrEqual(after.currentTotal);
    gpu.model.releaseActivations();
    expect(backend.memory.snapshot().current.activations).toBe(0);
    gpu.dispose();
    cpu.dispose();
    expect(backend.memory.snapshot().currentTotal).toBe(0);
    // Freed buffers wait in the pool for reuse, outside the tracker's count.
    expect(backend.pool.stats.idleBytes).toBeGreaterThan(0);
    const again = backend.allocate([16, 64], 'f32', 'activations');
    expect(backend.memory.snapshot().current.activations).toBe(16 * 64 * 4);
    again.dispose();
  });

  it('runs a technique package’s WGSL kernel registered in the pipeline’s registry', async () => {
    const { backend } = await webGpuForTests({ kernels: globalKernels.child() });
    const gpu = backend!;
    registerDType({ name: 'negated', blockSize: 1, blockBytes: 4, float: false });
    // A 'linear' for a made-up weight format: weights stored negated.
    gpu.kernels.register('webgpu', 'linear', (x: Tensor, w: Tensor, _b: Tensor | null, out: Tensor) => {
      const g = gpuOf(out);
      const [N, K] = w.shape;
      const [sx, sw, so] = [g.at(x), g.at(w), g.at(out)];
      g.dispatch({
        key: 'test:negated-linear',
        code: /* wgsl */ `
          struct Params { N: u32, K: u32, x: u32, w: u32, o: u32 }
          @compute @workgroup_size(64)
          fn main(@builtin(global_invocation_id) id: vec3<u32>) {
            if (id.x >= p.N) { return; }
            var s = 0.0;
            for (var k = 0u; k < p.K; k++) { s -= ld_x(p.x + k) * ld_w(p.w + id.x * p.K + k); }
            st_out(p.o + id.x, s);
          }`,
        bindings: [
          { name: 'x', buf: sx.buf, type: 'f32' },
          { name: 'w', buf: sw.buf, type: 'f32' },
          { name: 'out', buf: so.buf, type: 'f32', write: true },
        ],
        params: [N, K, sx.offset, sw.offset, so.offset],
        workgroups: [Math.ceil(N / 64)],
      });
    }, { variant: 'negated' });
    const x = gpu.upload(new Uint8Array(Float32Array.from([1, 2, 3]).buffer), [1, 3], 'f32', 'other');
    const w = gpu.upload(new Uint8Array(Float32Array.from([-1, 0, 0, 0, -1, 0, 0, 0, -2, -1, -1, -1]).buffer), [4, 3], 'negated', 'other');
    const y = gpu.allocate([1, 4], 'f32', 'other');
    gpu.kernels.get('webgpu', 'linear', 'negated')(x, w, null, y);
    expect(Array.from(await gpu.read(y))).toEqual([1, 2, 6, 6]);
    expect(new CpuBackend().supportsOp('linear', 'negated')).toBe(false);
  });
});

describe.skipIf(!probe || !existsSync(FIXTURE))('the trained fixture model on WebGPU', () => {
  it('continues greedily exactly as the CPU backend does (32 tokens), and its perplexity is within 0.1%', async () => {
    const [cpu, gpu] = await pair(FIXTURE, {}, 512);
    const a = await cpu.generate(prompt, { maxTokens: 32, temperature: 0, stopOnEos: false }).result;
    const b = await gpu.generate(prompt, { maxTokens: 32, temperature: 0, stopOnEos: false }).result;
    expect(b.tokenIds).toEqual(a.tokenIds);
    const text = heldOut.slice(0, 1500);
    const pa = await cpu.perplexity(text, { context: 256 });
    const pb = await gpu.perplexity(text, { context: 256 });
    expect(Math.abs(pb.perplexity - pa.perplexity) / pa.perplexity).toBeLessThan(1e-3);
  });
});

describe('choosing a backend', () => {
  it("'auto' takes WebGPU on a hardware adapter only and says which; 'cpu' is the CPU", async () => {
    const auto = await createBackend('auto', {}, { threads: 2 });
    const hardware = await mayHaveHardwareGpu();
    // On a machine without a GPU the only adapter is llvmpipe: the wasm backend beats it.
    if (!hardware) expect(auto.description).toBe('wasm (2 threads; no GPU found)');
    else expect(auto.description).toMatch(/^webgpu \(.+\)$|^wasm \(.+\)$/);
    await auto.backend.close?.();
    expect((await createBackend('cpu')).backend.name).toBe('cpu');
    await expect(createBackend('metal' as never)).rejects.toThrow(/unknown backend 'metal'; choose one of cpu, webgpu, auto/);
  });

  it('explains a missing adapter and what to do', async () => {
    // Dawn's Vulkan backend alone: no adapter on a machine without a Vulkan GPU (CI, this project's machines).
    const r = await createBackend('webgpu', { dawnFlags: ['backend=vulkan'] }).catch((e: Error) => e);
    if (!(r instanceof Error)) return void console.warn('a Vulkan adapter exists here; the error path is not exercised');
    expect(r.name).toBe('WebGpuUnavailableError');
    expect(r.message).toMatch(/WebGPU: Dawn found no adapter .*apt-get install -y libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri.*--backend cpu/);
  });
});
