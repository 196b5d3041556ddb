import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPipeline, createWorkerPipeline, type Pipeline, type WorkerPipeline } from '@lithe/core';
import { kvQuant } from '@lithe/kv-quant';

// createWorkerPipeline over a Node worker thread: the same tokens, chat and perplexity as a pipeline
// on this thread, streamed as events, stopped by an AbortSignal or by leaving the loop.
const tinyBrown = fileURLToPath(new URL('../../fixtures/models/tiny-brown', import.meta.url));
const script = fileURLToPath(new URL('./app/node-pipeline-worker.mjs', import.meta.url));
const PROMPT = 'The jury said that the city';
const options = { model: tinyBrown, backend: 'cpu' as const, kvDtype: 'f32' as const, cacheSize: 256 };

let local: Pipeline;
let remote: WorkerPipeline;
const progress: [number, number, string][] = [];

beforeAll(async () => {
  local = await createPipeline(options);
  remote = await createWorkerPipeline(new Worker(script), { ...options, onProgress: (a, b, what) => progress.push([a, b, what]) });
});
afterAll(async () => {
  local?.dispose();
  await remote?.dispose();
});

describe('createWorkerPipeline in a Node worker', () => {
  it('loads with progress and says what it loaded', () => {
    expect(remote.backendDescription).toBe('cpu');
    expect(remote.config).toEqual(local.config);
    expect(progress.length).toBeGreaterThan(0);
    const [loaded, total, what] = progress.at(-1)!;
    expect([loaded, what]).toEqual([total, 'load']);
    expect(remote.memory.current.weights).toBe(local.backend.memory.snapshot().current.weights);
    expect(remote.memory.current.weights).toBeGreaterThan(0);
  });

  it('streams the token events of a local generation', async () => {
    const opts = { maxTokens: 24, temperature: 0, stopOnEos: false };
    const expected = await local.generate(PROMPT, opts).result;
    const events = [];
    const steps: number[] = [];
    remote.on('step', (s) => steps.push(s.tokens));
    const gen = remote.generate(PROMPT, opts);
    for await (const ev of gen) events.push(ev);
    const result = await gen.result;
    expect(result.tokenIds).toEqual(expected.tokenIds);
    expect(result.text).toBe(expected.text);
    expect(events.map((e) => e.id).filter((id) => id !== null)).toEqual(expected.tokenIds);
    expect(events.map((e) => e.text).join('')).toBe(expected.text);
    // The pipeline's own events come across too (step, memory).
    expect(steps.length).toBeGreaterThan(0);
    expect(remote.memory.peak.kv).toBeGreaterThan(0);
    remote.removeAllListeners('step');
  });

  it('an AbortSignal stops it; so does leaving the loop', async () => {
    const stop = new AbortController();
    let seen = 0;
    const gen = remote.generate(PROMPT, { maxTokens: 200, temperature: 0, stopOnEos: false, signal: stop.signal });
    for await (const ev of gen) if (ev.id !== null && ++seen === 3) stop.abort();
    const r = await gen.result;
    expect(r.finishReason).toBe('abort');
    expect(r.completionTokens).toBeLessThan(200);

    const broken = remote.generate(PROMPT, { maxTokens: 200, temperature: 0, stopOnEos: false });
    for await (const ev of broken) if (ev.index >= 2) break;
    expect((await broken.result).finishReason).toBe('abort');
  });

  it('chat and perplexity answer as on this thread', async () => {
    const messages = [{ role: 'user' as const, content: 'Say something.' }];
    const opts = { maxTokens: 12, temperature: 0 };
    expect((await remote.chat(messages, opts).result).tokenIds).toEqual((await local.chat(messages, opts).result).tokenIds);
    const text = 'The Fulton County Grand Jury said Friday an investigation of recent primary election produced no evidence.';
    const windows: number[] = [];
    const r = await remote.perplexity(text, { context: 16, onWindow: (done) => windows.push(done) });
    expect(r).toEqual(await local.perplexity(text, { context: 16 }));
    expect(windows.length).toBeGreaterThan(0);
  });

  it('plugins are built in the worker by name', async () => {
    const quantLocal = await createPipeline({ ...options, plugins: [kvQuant({ bits: 8 })] });
    const quantRemote = await createWorkerPipeline(new Worker(script), { ...options, plugins: [{ name: 'kvQuant', options: { bits: 8 } }] });
    try {
      const opts = { maxTokens: 16, temperature: 0, stopOnEos: false };
      expect((await quantRemote.generate(PROMPT, opts).result).tokenIds).toEqual((await quantLocal.generate(PROMPT, opts).result).tokenIds);
    } finally {
      quantLocal.dispose();
      await quantRemote.dispose();
    }
    const bare = new Worker(script);
    await expect(createWorkerPipeline(bare, { ...options, plugins: [{ name: 'nf4' }] })).rejects.toThrow(/plugin 'nf4' is not available in the worker: pass it to serveWorkerPipeline\(\{ plugins: \{ nf4 \} \}\)/);
    await bare.terminate();
  });

  it('a model that fails to load rejects with its message', async () => {
    const w = new Worker(script);
    await expect(createWorkerPipeline(w, { ...options, model: join(tinyBrown, 'nope') })).rejects.toThrow(/model directory .*nope does not exist/);
    await w.terminate();
  });
});
