/**
 * Generations that run together are batched (one forwardBatch per step for all running sequences)
 * and each gives what it gives alone: greedy and seeded sampling, per-sequence stop strings,
 * maxTokens, AbortSignal and events, on the cpu and wasm backends.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../backend/backend.js';
import { CpuBackend } from '../backends/cpu/cpu-backend.js';
import { WasmBackend } from '../backends/wasm/wasm-backend.js';
import { webGpuForTests } from '../backends/webgpu/testing.js';
import type { GenerateOptions } from '../generate/generate.js';
import type { BatchSequence } from '../model/llama.js';
import { freshRng } from '../testing/random.js';
import { tinyModel } from '../testing/tiny-model.js';
import { createPipeline } from './create-pipeline.js';
import type { Pipeline } from './pipeline.js';

const rng = freshRng();
const tiny = tinyModel({}, 'F32', rng.seed, { neverEos: true });
const wasm = await WasmBackend.create({ threads: 2, minParallelWork: 0 });
const gpu = await webGpuForTests();
const pipelines: Pipeline[] = [];
afterAll(async () => {
  pipelines.forEach((p) => p.dispose());
  await wasm.close();
});

const PROMPTS = ['The jury said that', 'It was', 'Once upon a time there was a little', 'Yes'];

/** A pipeline whose forwardBatch calls are recorded as the number of sequences in each. */
async function recorded(backend: Backend): Promise<{ p: Pipeline; batches: number[] }> {
  const p = await createPipeline({ model: tiny.files, backend, cacheSize: 96 });
  pipelines.push(p);
  const batches: number[] = [];
  const inner = p.model.forwardBatch.bind(p.model);
  p.model.forwardBatch = (seqs: readonly BatchSequence[]) => (batches.push(seqs.length), inner(seqs));
  return { p, batches };
}

async function alone(p: Pipeline, opts: GenerateOptions[]) {
  const out = [];
  for (const [i, prompt] of PROMPTS.entries()) out.push(await p.generate(prompt, opts[i]).result);
  return out;
}

// On WebGPU greedy decoding takes the argmax on the device: the batch's argmax rows are read at once.
const BACKENDS: [string, () => Backend | null][] = [
  ['cpu', () => new CpuBackend()],
  ['wasm (2 threads)', () => wasm],
  ['webgpu', () => gpu.backend],
];

describe(`generateBatch gives each sequence what it gives alone (seed ${rng.seed})`, () => {
  for (const [name, backend] of BACKENDS) {
    it.skipIf(!backend())(`${name}: greedy, with ragged prompts and maxTokens; finished sequences leave the batch`, async () => {
      const { p, batches } = await recorded(backend()!);
      const opts = [12, 5, 9, 1].map((maxTokens) => ({ temperature: 0, maxTokens, stopOnEos: false }));
      const solo = await alone(p, opts);
      batches.length = 0;
      const together = await Promise.all(p.generateBatch(PROMPTS, opts).map((g) => g.result));
      expect(together.map((r) => r.tokenIds)).toEqual(solo.map((r) => r.tokenIds));
      expect(together.map((r) => r.text)).toEqual(solo.map((r) => r.text));
      // Prefill of all four, then decode steps of 3, 2 and 1 sequences as they finish (maxTokens 1
      // needs no decode step; 5 tokens need 4, 9 need 8, 12 need 11).
      expect(batches).toEqual([4, ...Array(4).fill(3), ...Array(4).fill(2), ...Array(3).fill(1)]);
    });

    it.skipIf(!backend())(`${name}: seeded sampling, each sequence with its own options`, async () => {
      const { p, batches } = await recorded(backend()!);
      const opts: GenerateOptions[] = [
        { temperature: 1.3, seed: 11, maxTokens: 10, stopOnEos: false },
        { temperature: 0.7, topK: 40, seed: 5, maxTokens: 10, stopOnEos: false },
        { temperature: 1, topP: 0.9, repetitionPenalty: 1.2, seed: 99, maxTokens: 7, stopOnEos: false },
        { temperature: 0, maxTokens: 10, stopOnEos: false },
      ];
      const solo = await alone(p, opts);
      batches.length = 0;
      const together = await Promise.all(p.generateBatch(PROMPTS, opts).map((g) => g.result));
      expect(together.map((r) => r.tokenIds)).toEqual(solo.map((r) => r.tokenIds));
      expect(Math.max(...batches)).toBe(4);
    });
  }

  it('stop strings, an AbortSignal and token events stay per sequence', async () => {
    const { p } = await recorded(new CpuBackend());
    const base = { temperature: 0, maxTokens: 16, stopOnEos: false };
    const free = await p.generate(PROMPTS[0], base).result;
    // A stop string taken from the middle of the first prompt's own greedy text.
    const stop = free.text.slice(Math.floor(free.text.length / 2), Math.floor(free.text.length / 2) + 3);
    const ac = new AbortController();
    const opts: GenerateOptions[] = [{ ...base, stop: [stop] }, { ...base, signal: ac.signal }, base, { ...base, maxTokens: 3 }];
    const solo = await Promise.all([p.generate(PROMPTS[0], opts[0]).result, null, p.generate(PROMPTS[2], base).result, p.generate(PROMPTS[3], opts[3]).result]);

    const gens = p.generateBatch(PROMPTS, opts);
    const streamed = await Promise.all(
      gens.map(async (g, i) => {
        let text = '';
        let n = 0;
        for await (const ev of g) {
          text += ev.text;
          if (i === 1 && ++n === 4) ac.abort();
        }
        return { text, result: await g.result };
      }),
    );
    expect(streamed.map((s) => s.text)).toEqual(streamed.map((s) => s.result.text));
    expect(streamed[0].result).toMatchObject({ finishReason: 'stop', text: solo[0]!.text });
    expect(streamed[0].result.text).not.toContain(stop);
    expect(streamed[1].result).toMatchObject({ finishReason: 'abort', completionTokens: 4 });
    expect(streamed[2].result.tokenIds).toEqual(solo[2]!.tokenIds);
    expect(streamed[3].result).toMatchObject({ finishReason: 'length', tokenIds: solo[3]!.tokenIds });
  });

  it('chunked prefill: a long prompt joining running generations is prefilled in chunks between their decode steps', async () => {
    // Steps of at most 16 new tokens; an f32 cache so that chunk boundaries cannot round differently.
    const p = await createPipeline({ model: tiny.files, backend: new CpuBackend(), cacheSize: 160, maxChunk: 16, kvDtype: 'f32' });
    pipelines.push(p);
    const steps: { sequences: number; rows: number; prefillChunks: number; ms: number; gapMs: number }[] = [];
    p.on('batch', ({ sequences, rows, prefillChunks, ms, gapMs }) => steps.push({ sequences, rows, prefillChunks, ms, gapMs }));
    const long = Array.from({ length: 90 }, (_, i) => 1 + ((rng.seed + i * 7919) % 200));
    const opts: GenerateOptions[] = [
      { temperature: 0.9, seed: 3, maxTokens: 24, stopOnEos: false },
      { temperature: 0, maxTokens: 24, stopOnEos: false },
      { temperature: 1.1, topK: 20, seed: 8, maxTokens: 6, stopOnEos: false },
    ];
    const solo = [await p.generate(PROMPTS[0], opts[0]).result, await p.generate(PROMPTS[1], opts[1]).result, await p.generate(long, opts[2]).result];
    steps.length = 0;
    const t0 = performance.now();
    const [a, b] = [p.generate(PROMPTS[0], opts[0]), p.generate(PROMPTS[1], opts[1])];
    let late: Promise<unknown> | null = null;
    const consume = async (g: typeof a) => {
      for await (const ev of g) if (ev.index === 2 && !late) late = p.generate(long, opts[2]).result;
      return g.result;
    };
    const together = await Promise.all([consume(a), consume(b)]);
    const third = await late!;
    // A step's model time and the idle gap before it never overlap another step's: together they fit in the wall time.
    const wall = performance.now() - t0;
    expect(steps.every((s) => s.ms > 0 && s.gapMs >= 0)).toBe(true);
    expect(steps.reduce((n, s) => n + s.ms + s.gapMs, 0)).toBeLessThanOrEqual(wall + 1);
    expect(together.map((r) => r.tokenIds)).toEqual([solo[0].tokenIds, solo[1].tokenIds]);
    expect((third as typeof solo[2]).tokenIds).toEqual(solo[2].tokenIds);
    // No step ran more than 16 tokens: the 90-token prompt took at least 5 chunks, most of them in
    // the same step as the two decode rows of the running generations (a step may go without a
    // generation that is away longer than the scheduler's few event-loop turns).
    expect(Math.max(...steps.map((s) => s.rows))).toBeLessThanOrEqual(16);
    const chunks = steps.filter((s) => s.prefillChunks > 0);
    expect(chunks.length).toBeGreaterThanOrEqual(5);
    expect(chunks.filter((s) => s.sequences === 3 && s.rows === 16).length).toBeGreaterThanOrEqual(chunks.length - 2);
  });

  it('a prompt cancelled during its chunked prefill stops between chunks, and the others go on', async () => {
    const p = await createPipeline({ model: tiny.files, backend: new CpuBackend(), cacheSize: 160, maxChunk: 16, kvDtype: 'f32' });
    pipelines.push(p);
    const long = Array.from({ length: 90 }, (_, i) => 1 + ((rng.seed + i * 7919) % 200));
    const opts: GenerateOptions = { temperature: 0, maxTokens: 24, stopOnEos: false };
    const solo = await p.generate(PROMPTS[1], opts).result;
    const ac = new AbortController();
    const chunks: number[] = [];
    // Cancel the long prompt as soon as its first chunk has run.
    p.on('batch', ({ prefillChunks }) => {
      if (prefillChunks > 0) chunks.push(prefillChunks);
      if (chunks.length === 1) ac.abort();
    });
    const other = p.generate(PROMPTS[1], opts);
    let late: Promise<{ finishReason: string; completionTokens: number }> | null = null;
    for await (const ev of other) if (ev.index === 2) late = p.generate(long, { maxTokens: 6, signal: ac.signal }).result;
    expect(await late!).toMatchObject({ finishReason: 'abort', completionTokens: 0 });
    expect((await other.result).tokenIds).toEqual(solo.tokenIds);
    // 90 tokens in steps of 16 would take 6 chunks: it stopped after the one running when the signal fired.
    expect(chunks.length).toBeLessThanOrEqual(2);
    // The cache went back to the pool holding the chunks that ran: the same prompt reuses them.
    const again = await p.generate(long, { maxTokens: 1 }).result;
    expect(again.cachedPromptTokens).toBeGreaterThan(0);
    expect(again.cachedPromptTokens).toBeLessThanOrEqual(32);
  });

  it('refuses a list of options that does not match the prompts', async () => {
    const { p } = await recorded(new CpuBackend());
    expect(() => p.generateBatch(PROMPTS, [{}, {}])).toThrow(/4 prompts but 2 option objects/);
  });
});
