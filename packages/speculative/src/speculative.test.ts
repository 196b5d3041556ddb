import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WasmBackend, WebGpuBackend, createPipeline, type Backend, type GenerateOptions, type ModelFiles, type Pipeline, type TokenEvent } from '@lithe/core';
import { tinyModel } from '@lithe/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import type { SpeculativeStats } from './stats.js';
import { speculative, type SpeculativeOptions } from './speculative.js';

const seed = (Math.random() * 2 ** 31) >>> 0;
// Hidden and FFN sizes are multiples of 32 so the self drafts quantize every linear.
const config = { hidden_size: 64, intermediate_size: 96, tie_word_embeddings: true };
const target = tinyModel(config, 'F32', seed, { neverEos: true });
const other = tinyModel(config, 'F32', seed + 1, { neverEos: true });
const pipelines: Pipeline[] = [];
afterAll(() => pipelines.forEach((p) => p.dispose()));

let gpu: WebGpuBackend | null = null;
try {
  gpu = await WebGpuBackend.create();
} catch (e) {
  if (process.env.CI) throw e;
  console.warn(`skipping WebGPU tests: ${(e as Error).message}`);
}
const wasm = await WasmBackend.create({ threads: 1 });

async function open(backend: Backend | 'cpu', plugins: Parameters<typeof createPipeline>[0]['plugins'] = [], model: Parameters<typeof createPipeline>[0]['model'] = target.files): Promise<Pipeline> {
  const p = await createPipeline({ model, backend, plugins, cacheSize: 128 });
  pipelines.push(p);
  return p;
}

async function events(p: Pipeline, prompt: string | number[], opts: GenerateOptions, onEvent?: (e: TokenEvent) => void) {
  const out: TokenEvent[] = [];
  const g = p.generate(prompt, opts);
  for await (const e of g) {
    out.push(e);
    onEvent?.(e);
  }
  return { events: out, result: await g.result };
}

/**
 * The same events as plain decoding: indices, ids and text exactly; log-probabilities to 1e-6. A
 * verification row's logits may differ from a lone row's by an ulp somewhere in the vocabulary
 * (another summation order), which moves a log-probability by ~1e-12, not the tokens.
 */
function expectSameEvents(got: TokenEvent[], want: TokenEvent[]): void {
  const exact = (evs: TokenEvent[]) => evs.map(({ logprob, topLogprobs, ...e }) => ({ ...e, logprob: logprob !== undefined, top: topLogprobs?.map((t) => t.id) }));
  expect(exact(got)).toEqual(exact(want));
  want.forEach((w, i) => {
    if (w.logprob !== undefined) expect(got[i].logprob).toBeCloseTo(w.logprob, 6);
    w.topLogprobs?.forEach((t, j) => expect(got[i].topLogprobs![j].logprob).toBeCloseTo(t.logprob, 6));
  });
}

// A prompt that repeats itself, so prompt lookup finds matches.
const PROMPT = 'The jury said that the city of Atlanta said that the city';
const greedy: GenerateOptions = { temperature: 0, maxTokens: 40, stopOnEos: false };

describe(`greedy speculative decoding is plain greedy decoding, token for token (seed ${seed})`, () => {
  const drafts: [string, (b: Backend | 'cpu') => Promise<SpeculativeOptions['draft']>][] = [
    ['self-int8', async () => 'self-int8'],
    ['self-int4', async () => 'self-int4'],
    ['prompt lookup', async () => 'prompt-lookup'],
    ['a different model (few acceptances)', async (b) => open(b, [], other.files)],
    ['the target itself (all accepted)', async (b) => open(b, [], target.files)],
  ];
  const backends: [string, Backend | 'cpu' | null][] = [
    ['cpu', 'cpu'],
    ['wasm', wasm],
    ['webgpu', gpu],
  ];
  for (const [bname, backend] of backends) {
    for (const [dname, draft] of drafts) {
      const unsupported = bname === 'webgpu' && dname.startsWith('self');
      it.skipIf(!backend || unsupported)(`${bname}: ${dname}`, async () => {
        const plain = await open(backend!);
        const spec = await open(backend!, [speculative({ draft: await draft(backend!), tokens: 4 })]);
        const a = await events(plain, PROMPT, greedy);
        const b = await events(spec, PROMPT, greedy);
        expect(b.result.tokenIds).toEqual(a.result.tokenIds);
        expectSameEvents(b.events, a.events);
        expect(b.result.text).toBe(a.result.text);
        const s = b.result.stats!.speculative as SpeculativeStats;
        expect(s.steps).toBeGreaterThan(0);
        // Every emitted token after the first came from a verification step or a plain one.
        expect(s.steps + s.accepted + s.plainSteps).toBe(b.result.tokenIds.length - 1);
        expect(s.acceptedCounts.reduce((x, y) => x + y, 0)).toBe(s.steps);
        expect(s.meanAccepted).toBeCloseTo(s.accepted / s.steps, 12);
        if (dname.startsWith('the target')) expect(s.accepted).toBe(s.drafted);
        if (dname.startsWith('self-int8')) expect(s.accepted / s.drafted).toBeGreaterThan(0.5);
      });
    }
  }

  it('on webgpu a self draft is a clear error (no q8_0 / q4_0 kernels there)', async () => {
    if (!gpu) return;
    await expect(open(gpu, [speculative({ draft: 'self-int8' })])).rejects.toThrow(/backend 'webgpu' has no q8_0 linear kernel.*draft model, or prompt lookup/);
  });
});

describe(`stopping, events and stats behave as without speculation (seed ${seed})`, () => {
  it('stop strings, maxTokens, EOS (forced mid-draft) and logprobs', async () => {
    const plain = await open('cpu');
    const spec = await open('cpu', [speculative({ draft: 'self-int8', tokens: 5 })]);
    const base = await events(plain, PROMPT, greedy);
    // A stop string from the middle of the plain text.
    const text = base.result.text;
    const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 4);
    const prompt = plain.encode(PROMPT);
    const eosAt = (n: number) => (logits: Float32Array, tokens: readonly number[]) => {
      if (tokens.length === prompt.length + n) logits[2] = 1e9;
    };
    const cases: GenerateOptions[] = [
      { ...greedy, stop: [stop] },
      { ...greedy, maxTokens: 13 },
      { ...greedy, maxTokens: 1 },
      { ...greedy, stopOnEos: true, logitsProcessors: [eosAt(9)] },
      { ...greedy, maxTokens: 11, logprobs: 3 },
      { ...greedy, repetitionPenalty: 1.3, maxTokens: 24 },
    ];
    for (const opts of cases) {
      const a = await events(plain, PROMPT, opts);
      const b = await events(spec, PROMPT, opts);
      expectSameEvents(b.events, a.events);
      expect([b.result.text, b.result.finishReason, b.result.tokenIds]).toEqual([a.result.text, a.result.finishReason, a.result.tokenIds]);
    }
  });

  it('an AbortSignal stops at the same token', async () => {
    const plain = await open('cpu');
    const spec = await open('cpu', [speculative({ draft: 'self-int8', tokens: 5 })]);
    const run = async (p: Pipeline) => {
      const ac = new AbortController();
      return events(p, PROMPT, { ...greedy, signal: ac.signal }, (e) => e.index === 6 && ac.abort());
    };
    const [a, b] = [await run(plain), await run(spec)];
    expect(a.result.finishReason).toBe('abort');
    expectSameEvents(b.events, a.events);
    expect(b.result.tokenIds).toHaveLength(7);
  });

  it('step events carry the running stats; adaptive k stays within [1, tokens]', async () => {
    const spec = await open('cpu', [speculative({ draft: await open('cpu', [], other.files), tokens: 6, adaptive: true })]);
    const steps: SpeculativeStats[] = [];
    spec.on('step', (e) => steps.push(e.stats!.speculative as SpeculativeStats));
    const { result } = await events(spec, PROMPT, greedy);
    const last = result.stats!.speculative as SpeculativeStats;
    expect(steps.at(-1)).toEqual(last);
    expect(steps.map((s) => s.steps + s.plainSteps)).toEqual(steps.map((_, i) => i + 1));
    expect(last.acceptanceRate).toHaveLength(6);
    for (const r of last.acceptanceRate) expect(r).toBeGreaterThanOrEqual(0);
    // Adaptive: after a rejection the next step drafts (accepted + 1) tokens, so most steps draft few.
    expect(last.drafted / last.steps).toBeLessThan(6);
  });

  it('concurrent generations keep their own draft caches', async () => {
    const plain = await open('cpu');
    const spec = await open('cpu', [speculative({ draft: 'self-int4', tokens: 3 })]);
    const prompts = ['Once upon a time', PROMPT, 'She looked at the'];
    const want = await Promise.all(prompts.map((q) => plain.generate(q, { ...greedy, maxTokens: 20 }).result));
    const got = await Promise.all(prompts.map((q) => spec.generate(q, { ...greedy, maxTokens: 20 }).result));
    expect(got.map((r) => r.tokenIds)).toEqual(want.map((r) => r.tokenIds));
  });
});

const FIXTURES = fileURLToPath(new URL('../../../tooling/fixtures/models/', import.meta.url));
describe.skipIf(!existsSync(`${FIXTURES}tiny-brown-draft`))('the trained fixture with its committed 2-layer draft (a directory draft)', () => {
  it('wasm: greedy tokens equal plain decoding; the draft is accepted often', async () => {
    const plain = await open(wasm, [], `${FIXTURES}tiny-brown`);
    const spec = await open(wasm, [speculative({ draft: `${FIXTURES}tiny-brown-draft`, tokens: 3 })], `${FIXTURES}tiny-brown`);
    const prompt = 'The jury said that the city of Atlanta';
    const a = await plain.generate(prompt, greedy).result;
    const b = await spec.generate(prompt, greedy).result;
    expect(b.tokenIds).toEqual(a.tokenIds);
    expect((b.stats!.speculative as SpeculativeStats).acceptanceRate[0]).toBeGreaterThan(0.3);
  });
});

describe('bad options and drafts fail at creation with a clear error', () => {
  it('names the problem', async () => {
    expect(() => speculative({ draft: 'self-int8', tokens: 0 })).toThrow(/tokens \(draft length k\) must be an integer from 1 to 64, got 0/);
    expect(() => speculative({} as SpeculativeOptions)).toThrow(/`draft` is required/);
    const small = tinyModel({ ...config, vocab_size: 32001 }, 'F32', seed);
    const draft = await open('cpu', [], small.files);
    await expect(open('cpu', [speculative({ draft })])).rejects.toThrow(/different vocabulary \(vocab size 32001 vs the target's 32000\)/);
  });

  it('refuses a draft whose vocabulary has the same size but other pieces', async () => {
    // The target's tokenizer with two pieces swapped: sizes, BOS and EOS all agree.
    const other = tinyModel(config, 'F32', seed);
    const swapped: ModelFiles = {
      ...other.files,
      location: 'swapped-vocab',
      readText: async (name) => {
        const text = await other.files.readText(name);
        if (name !== 'tokenizer.json') return text;
        const json = JSON.parse(text) as { model: { vocab: Record<string, number> } };
        const vocab = json.model.vocab;
        const [a, b] = Object.keys(vocab).filter((k) => vocab[k] === 1000 || vocab[k] === 1001);
        [vocab[a], vocab[b]] = [vocab[b], vocab[a]];
        return JSON.stringify(json);
      },
      has: (name) => other.files.has(name),
      open: (name) => other.files.open(name),
    };
    const draft = await open('cpu', [], swapped);
    await expect(open('cpu', [speculative({ draft })])).rejects.toThrow(/different vocabulary \(2 tokens differ, first id 1000: ".*" in the target's, ".*" in the draft's\)/);
  });
});
