import { describe, expect, it } from 'vitest';
import { WasmBackend } from '../backends/wasm/wasm-backend.js';
import { webGpuForTests } from '../backends/webgpu/testing.js';
import { definePlugin } from '../plugin/define-plugin.js';
import { modelFromWeights, tinyModel } from '../testing/tiny-model.js';
import { BUILTIN_CHAT_TEMPLATES } from '../io/builtin-chat-templates.js';
import type { ModelFiles } from '../io/hf-dir.js';
import { createPipeline } from './create-pipeline.js';
import { DEFAULT_MAX_TOKENS } from './pipeline.js';

const tiny = tinyModel();
const pipeline = await createPipeline({ model: tiny.files, backend: 'cpu', cacheSize: 96 });
const PROMPT = 'The jury said that';

/** Greedy decoding written out by hand with the model and a fresh cache. */
async function manualGreedy(n: number): Promise<number[]> {
  const cache = pipeline.createCache(64);
  let ids = pipeline.encode(PROMPT);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const logits = (await pipeline.backend.read(pipeline.model.forward(Int32Array.from(ids), cache))) as Float32Array;
    const next = logits.indexOf(Math.max(...logits));
    out.push(next);
    ids = [next];
  }
  cache.dispose();
  return out;
}

describe('generation', () => {
  it('greedy equals argmax decoding by hand, and reports counts and timings', async () => {
    const r = await pipeline.generate(PROMPT, { temperature: 0, maxTokens: 8, stopOnEos: false }).result;
    expect(r.tokenIds).toEqual(await manualGreedy(8));
    expect(r).toMatchObject({ promptTokens: pipeline.encode(PROMPT).length, completionTokens: 8, finishReason: 'length' });
    // The completion keeps its leading space: prompt + text reads as one string.
    expect(PROMPT + r.text).toBe(pipeline.tokenizer.decode([...pipeline.encode(PROMPT), ...r.tokenIds]));
    expect(r.timings.ttftMs).toBeGreaterThan(0);
    expect(r.timings.decodeTokensPerSecond).toBeGreaterThan(0);
    expect(r.peakMemoryBytes).toBeGreaterThanOrEqual(pipeline.backend.memory.snapshot().current.weights);
  });

  it('the same seed gives the same tokens; another seed does not', async () => {
    const opts = { temperature: 1.5, maxTokens: 12, stopOnEos: false };
    const a = await pipeline.generate(PROMPT, { ...opts, seed: 7 }).result;
    const b = await pipeline.generate(PROMPT, { ...opts, seed: 7 }).result;
    const c = await pipeline.generate(PROMPT, { ...opts, seed: 8 }).result;
    expect(a.tokenIds).toEqual(b.tokenIds);
    expect(c.tokenIds).not.toEqual(a.tokenIds);
  });

  it('streams token events whose text adds up to the result', async () => {
    const g = pipeline.generate(PROMPT, { temperature: 0.9, seed: 3, maxTokens: 10, stopOnEos: false });
    let text = '';
    const ids: number[] = [];
    for await (const ev of g) {
      text += ev.text;
      if (ev.id !== null) ids.push(ev.id);
    }
    const r = await g.result;
    expect(text).toBe(r.text);
    expect(ids).toEqual(r.tokenIds);
  });

  it('stops before a stop string, which is not part of the text', async () => {
    const full = await pipeline.generate(PROMPT, { temperature: 0, maxTokens: 12, stopOnEos: false }).result;
    const stop = full.text.slice(Math.floor(full.text.length / 2), Math.floor(full.text.length / 2) + 3);
    const cut = full.text.indexOf(stop);
    const r = await pipeline.generate(PROMPT, { temperature: 0, maxTokens: 12, stopOnEos: false, stop: [stop] }).result;
    expect(r.finishReason).toBe('stop');
    expect(r.text).toBe(full.text.slice(0, cut));
  });

  it('stops at EOS without emitting it', async () => {
    let n = 0;
    const eosAfter3 = definePlugin(() => ({ name: 'eos', processLogits: (l) => ((l.fill(-Infinity), (l[n++ < 3 ? 500 : 2] = 0)), undefined) }));
    const p = await createPipeline({ model: tiny.files, plugins: [eosAfter3()] });
    const r = await p.generate(PROMPT, { temperature: 0, maxTokens: 10 }).result;
    expect(r).toMatchObject({ tokenIds: [500, 500, 500], finishReason: 'stop' });
  });

  it('an AbortSignal ends the generation with finishReason abort', async () => {
    const ac = new AbortController();
    const g = pipeline.generate(PROMPT, { temperature: 0, maxTokens: 50, stopOnEos: false, signal: ac.signal });
    let n = 0;
    for await (const _ of g) if (++n === 2) ac.abort();
    const r = await g.result;
    expect(r).toMatchObject({ finishReason: 'abort', completionTokens: 2 });
  });

  it('text is right when a multi-byte character spans byte-fallback tokens', async () => {
    // '🦜' is not in the vocabulary: it is ▁ then the bytes F0 9F A6 9C (ids 3 + byte).
    const seq = [28705, 3 + 0xf0, 3 + 0x9f, 3 + 0xa6, 3 + 0x9c, 22557];
    let i = 0;
    const force = definePlugin(() => ({ name: 'force', processLogits: (l) => ((l.fill(-Infinity), (l[seq[i++ % seq.length]] = 0)), undefined) }));
    const p = await createPipeline({ model: tiny.files, plugins: [force()] });
    const pieces: string[] = [];
    const g = p.generate(PROMPT, { temperature: 0, maxTokens: seq.length, stopOnEos: false });
    for await (const ev of g) pieces.push(ev.text);
    expect(pieces.join('')).toBe(' 🦜 Hello');
    expect(pieces.some((s) => s.includes('\uFFFD'))).toBe(false);
    expect(pieces.slice(1, 4)).toEqual(['', '', '']);
  });

  it('refuses a prompt + maxTokens larger than the cache, before any work', async () => {
    await expect(pipeline.generate(PROMPT, { maxTokens: 500 }).result).rejects.toThrow(/exceed the KV cache size/);
  });

  it('breaking out of the loop releases the cache for the next generation', async () => {
    for (let round = 0; round < 3; round++) {
      for await (const _ of pipeline.generate(PROMPT, { maxTokens: 20, stopOnEos: false })) break;
    }
    const r = await pipeline.generate(PROMPT, { temperature: 0, maxTokens: 4, stopOnEos: false }).result;
    expect(r.tokenIds).toEqual(await manualGreedy(4));
  });

  it('emits prefill, step, memory and done events', async () => {
    const seen: string[] = [];
    for (const e of ['prefill', 'step', 'memory', 'done'] as const) pipeline.on(e, () => void seen.push(e));
    await pipeline.generate(PROMPT, { temperature: 0, maxTokens: 3, stopOnEos: false }).result;
    expect(seen).toEqual(['prefill', 'step', 'step', 'done', 'memory']);
    pipeline.removeAllListeners();
  });
});

describe('per-generation options', () => {
  it('runs logits processors for that generation only', async () => {
    const forced = await pipeline.generate(PROMPT, { temperature: 0, maxTokens: 3, stopOnEos: false, logitsProcessors: [(l) => ((l.fill(-Infinity), (l[777] = 0)), undefined)] }).result;
    expect(forced.tokenIds).toEqual([777, 777, 777]);
    const plain = await pipeline.generate(PROMPT, { temperature: 0, maxTokens: 3, stopOnEos: false }).result;
    expect(plain.tokenIds).toEqual(await manualGreedy(3));
  });

  it('reports log-probabilities of the chosen tokens and the top alternatives', async () => {
    const events = [];
    for await (const ev of pipeline.generate(PROMPT, { temperature: 0, maxTokens: 2, stopOnEos: false, logprobs: 3 })) events.push(ev);
    const cache = pipeline.createCache(64);
    const logits = (await pipeline.backend.read(pipeline.model.forward(Int32Array.from(pipeline.encode(PROMPT)), cache))) as Float32Array;
    cache.dispose();
    const row = Array.from(logits);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    const order = row.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]);
    expect(events[0].logprob).toBeCloseTo(m - lse, 5); // greedy picks the most likely token
    expect(events[0].topLogprobs!.map((t) => t.id)).toEqual(order.slice(0, 3).map(([, i]) => i));
    expect(events[0].topLogprobs![2].logprob).toBeCloseTo(order[2][0] - lse, 5);
    expect(events[1].topLogprobs).toHaveLength(3);
    await expect(pipeline.generate(PROMPT, { maxTokens: 2, logprobs: 21 }).result).rejects.toThrow(/logprobs must be an integer from 0 to 20/);
  });
});

describe('model defaults', () => {
  it('reads sampling defaults from generation_config.json', async () => {
    const withDefaults = tinyModel();
    const files = { ...withDefaults.files, has: async (n: string) => n === 'generation_config.json' || withDefaults.files.has(n), readText: async (n: string) => (n === 'generation_config.json' ? JSON.stringify({ do_sample: true, temperature: 0.7, top_p: 0.9 }) : withDefaults.files.readText(n)) };
    expect((await createPipeline({ model: files })).samplingDefaults).toEqual({ temperature: 0.7, topP: 0.9 });
    expect(pipeline.samplingDefaults).toEqual({});
  });
});

describe('perplexity', () => {
  it('equals exp(mean NLL) computed by hand over non-overlapping windows', async () => {
    const text = 'The quick brown fox jumps over the lazy dog. It was a bright cold day in April.';
    const ids = pipeline.encode(text);
    const context = 8;
    let nll = 0;
    let n = 0;
    for (let s = 0; s < ids.length; s += context) {
      const w = ids.slice(s, s + context);
      const cache = pipeline.createCache(16);
      const logits = (await pipeline.backend.read(pipeline.model.forward(Int32Array.from(w), cache, { logits: 'all' }))) as Float32Array;
      for (let t = 0; t + 1 < w.length; t++) {
        const row = Array.from(logits.subarray(t * 32000, (t + 1) * 32000));
        const m = Math.max(...row);
        const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
        nll += lse - row[w[t + 1]];
        n++;
      }
      cache.dispose();
    }
    const r = await pipeline.perplexity(text, { context });
    expect(r.tokens).toBe(n);
    expect(r.perplexity).toBeCloseTo(Math.exp(nll / n), 6);
  });
});

/** tiny.files with more or different files (generation_config.json, chat_template.jinja, ...). */
function withFiles(base: ModelFiles, extra: Record<string, string>): ModelFiles {
  return { ...base, has: async (n) => n in extra || base.has(n), readText: async (n) => (n in extra ? extra[n] : base.readText(n)) };
}

describe('abort and early exit', () => {
  // Long enough that, without yielding to the event loop, the timer would fire only after thousands of tokens.
  const long = tinyModel({ max_position_embeddings: 4096 });
  for (const backend of ['cpu', 'wasm'] as const) {
    it(`an AbortSignal fired from a timer stops the decode loop on ${backend}`, async () => {
      const p = await createPipeline({ model: long.files, backend, threads: 2, cacheSize: 4096 });
      const viaTimeout = await p.generate('Once', { maxTokens: 4000, stopOnEos: false, temperature: 0, signal: AbortSignal.timeout(150) }).result;
      expect(viaTimeout.finishReason).toBe('abort');
      expect(viaTimeout.completionTokens).toBeLessThan(4000);
      const ac = new AbortController();
      const g = p.generate('Once', { maxTokens: 4000, stopOnEos: false, signal: ac.signal });
      setTimeout(() => ac.abort(), 100);
      const r = await g.result;
      expect(r.finishReason).toBe('abort');
      expect(r.completionTokens).toBeLessThan(4000);
      p.dispose();
    });
  }

  it('breaking out of for await resolves result with the partial text and finishReason abort', async () => {
    const g = pipeline.generate(PROMPT, { temperature: 0, maxTokens: 30, stopOnEos: false });
    let seen = '';
    let n = 0;
    for await (const ev of g) {
      seen += ev.text;
      if (++n === 3) break;
    }
    const r = await g.result;
    expect(r.finishReason).toBe('abort');
    expect(r.completionTokens).toBe(3);
    expect(r.tokenIds).toEqual(await manualGreedy(3));
    expect(r.text.startsWith(seen)).toBe(true);
  });
});

describe('model files and options', () => {
  it('applies generation_config.json in the API: sampling defaults and max_new_tokens as the default maxTokens', async () => {
    const files = withFiles(tiny.files, { 'generation_config.json': JSON.stringify({ do_sample: false, max_new_tokens: 5 }) });
    const p = await createPipeline({ model: files, backend: 'cpu', cacheSize: 96 });
    expect(p.defaultMaxTokens).toBe(5);
    const r = await p.generate(PROMPT, { stopOnEos: false }).result;
    expect(r.completionTokens).toBe(5);
    expect(r.tokenIds).toEqual(await manualGreedy(5)); // do_sample: false -> greedy
    expect(pipeline.defaultMaxTokens).toBe(DEFAULT_MAX_TOKENS);
    // An explicit option (even one the model sets) wins; undefined does not.
    expect((await p.generate(PROMPT, { stopOnEos: false, maxTokens: 2, temperature: undefined }).result).completionTokens).toBe(2);
  });

  it('takes a chat template by name or text, the model directory\'s chat_template.jinja, and names the option when there is none', async () => {
    const named = await createPipeline({ model: tiny.files, backend: 'cpu', cacheSize: 16, chatTemplate: 'chatml' });
    expect(named.tokenizer.chatTemplate).toBe(BUILTIN_CHAT_TEMPLATES.chatml);
    expect(named.tokenizer.applyChatTemplate([{ role: 'user', content: 'Hi' }])).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    await expect(createPipeline({ model: tiny.files, chatTemplate: 'chatlm' })).rejects.toThrow(/neither a built-in template/);
    const jinja = await createPipeline({ model: withFiles(tiny.files, { 'chat_template.jinja': '{{ "J:" + messages[0].content }}' }), backend: 'cpu', cacheSize: 16 });
    expect(jinja.tokenizer.applyChatTemplate([{ role: 'user', content: 'x' }])).toBe('J:x');
    expect(() => pipeline.chat([{ role: 'user', content: 'x' }])).toThrow(/createPipeline\(\{ chatTemplate \}\) or --chat-template <file\|name>/);
  });

  it('refuses at load a tokenizer whose vocabulary does not fit the embedding rows', async () => {
    const small = tinyModel({ vocab_size: 1000 });
    await expect(createPipeline({ model: small.files, backend: 'cpu' })).rejects.toThrow(/the tokenizer has 32000 tokens \(ids up to 31999\) but the model's embedding has only 1000 rows \(config.json's vocab_size\)/);
  });

  it('checkTensors finds NaN/Inf in the weights at load; greedy decoding over NaN logits fails clearly', async () => {
    const w = new Map(tiny.weights);
    const bad = w.get('model.layers.1.mlp.down_proj.weight')!.slice();
    bad[37] = NaN;
    bad[40] = Infinity;
    w.set('model.layers.1.mlp.down_proj.weight', bad);
    const broken = modelFromWeights(tiny.config, w);
    await expect(createPipeline({ model: broken.files, backend: 'cpu', checkTensors: true })).rejects.toThrow(/tensor 'model.layers.1.mlp.down_proj.weight' \(f32\) holds 1 NaN and 1 Inf values \(the first at element 37\)/);
    for (const backend of ['cpu', 'wasm'] as const) {
      const p = await createPipeline({ model: broken.files, backend, threads: 2, cacheSize: 32 });
      await expect(p.generate(PROMPT, { temperature: 0, maxTokens: 3 }).result).rejects.toThrow(/the model produced NaN logits/);
      p.dispose();
    }
    (await createPipeline({ model: tiny.files, backend: 'cpu', cacheSize: 16, checkTensors: true })).dispose();
    // WebGPU takes greedy's argmax on the device (4 bytes read back): the kernel's NaN mark fails it the same way.
    const gpu = await webGpuForTests();
    if (gpu.backend) {
      const p = await createPipeline({ model: broken.files, backend: gpu.backend, cacheSize: 32 });
      await expect(p.generate(PROMPT, { temperature: 0, maxTokens: 3 }).result).rejects.toThrow(/the model produced NaN logits/);
      p.dispose();
    }
  });

  it("defaults to backend 'auto' and says what it chose", async () => {
    const p = await createPipeline({ model: tiny.files, cacheSize: 16, threads: 2 });
    expect(p.backend.name).toBe('wasm');
    expect(p.backendDescription).toMatch(/^wasm \(2 threads; /);
    p.dispose();
  });
});

describe('backend ownership', () => {
  it('dispose() closes a backend createPipeline made, and leaves one it was given open', async () => {
    const add = (b: WasmBackend) => {
      const t = b.allocate([4], 'f32', 'other');
      b.kernels.get('wasm', 'add')(t, t, t);
    };
    const owned = await createPipeline({ model: tiny.files, backend: 'wasm', threads: 2, cacheSize: 16 });
    const made = owned.backend as WasmBackend;
    owned.dispose();
    expect(() => add(made)).toThrow(/closed/);

    const given = await WasmBackend.create({ threads: 2 });
    (await createPipeline({ model: tiny.files, backend: given, cacheSize: 16 })).dispose();
    expect(() => add(given)).not.toThrow();
    await given.close();
  });
});
