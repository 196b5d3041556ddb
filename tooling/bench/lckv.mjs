#!/usr/bin/env node
// Layer-Condensed KV cache benchmark (@lithe/lckv): prints tables, or one JSON object with --json.
//
//   node tooling/bench/lckv.mjs [--json] [--backend wasm] [--context 2048] [--budget-mib 256]
//        [--prompt-tokens 32,128] [--reps 3] [--ppl-context 128] [--only memory,prefill,quality]
//
// Side by side: tiny-brown-lckv (6 layers, layer_types 0_1_5_5_5_5), tiny-brown-cla (0_0_2_2_4_4)
// and tiny-brown-6l, a standard Llama of the same shape trained the same way (tooling/fixtures/train-lckv.py).
// 1. memory: KV bytes per token (from the caches the pipelines allocate), and the largest batch of
//    --context-token caches that fits --budget-mib next to the weights, found by allocating caches
//    until the budget is spent; the same formulas for Llama-2-7B and TinyLlama shapes with the
//    paper's LCKV layout (2 warm-up layers, the rest reading the top layer), computed.
// 2. prefill: time to encode a prompt, iterative (the paper's parallel pass, m = 7, b = 2) vs
//    sequential (token by token, exact) vs the standard model's one pass, alternating A/B per rep.
// 3. quality: held-out perplexity of each model and mode (iterative vs sequential is the price of
//    the parallel pass).
// 4. decode: aggregate decode tok/s of core's batched forward (one step over B sequences, each its
//    own cache of --context tokens) at the largest batch each model fits, and at the standard
//    model's largest batch for both (--decode-steps steps after a one-token prompt).
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createPipeline, kvBytesPerToken, parameterCount, parseConfig } from '@lithe/core';
import { kvLayerMapOf, lckv, parseLayerTypes } from '@lithe/lckv';

const argv = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? fallback : argv[i + 1];
};
const has = (name) => argv.includes(`--${name}`);
const only = new Set((flag('only', 'memory,prefill,quality,decode')).split(','));
const backend = flag('backend', 'wasm');
const context = Number(flag('context', 2048));
const budget = Number(flag('budget-mib', 256)) * 2 ** 20;
const promptTokens = flag('prompt-tokens', '32,128').split(',').map(Number);
const reps = Number(flag('reps', 3));
const pplContext = Number(flag('ppl-context', 128));
const decodeSteps = Number(flag('decode-steps', 8));

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
const heldOut = readFileSync(`${fixtures}data/brown-heldout.txt`, 'utf8');
const MODELS = { lckv: 'tiny-brown-lckv', cla: 'tiny-brown-cla', standard: 'tiny-brown-6l' };
const MiB = 2 ** 20;

const load = (name, prefill, extra = {}) => createPipeline({ model: `${fixtures}models/${MODELS[name]}`, backend, plugins: name === 'standard' ? [] : [lckv({ prefill })], ...extra });

const out = { backend, context, budgetMiB: budget / MiB };

// ---------------------------------------------------------------------------------------------
// 1. Memory

if (only.has('memory')) {
  const rows = [];
  for (const name of Object.keys(MODELS)) {
    const p = await load(name, 'sequential', { cacheSize: context });
    const one = p.createCache();
    const perToken = one.bytes / context;
    one.dispose();
    const caches = [];
    // Allocate caches until the next would pass the budget (weights count against it).
    while (p.model.weightBytes + (caches.length + 1) * perToken * context <= budget) caches.push(p.createCache());
    const held = caches.reduce((s, c) => s + c.bytes, 0);
    rows.push({ model: name, layers: p.config.nLayers, kvLayers: caches[0]?.nLayers ?? 0, kvBytesPerToken: perToken, weightBytes: p.model.weightBytes, maxBatch: caches.length, kvBytesHeld: held });
    caches.forEach((c) => c.dispose());
    p.dispose();
  }
  const base = rows.find((r) => r.model === 'standard');
  for (const r of rows) r.kvRatio = r.kvBytesPerToken / base.kvBytesPerToken;

  // The paper's shapes, computed: warm-up layers 0 and 1 keep their KV, the rest read the top layer.
  const shapes = [
    ['Llama-2-7B', { hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, vocab_size: 32000 }],
    ['TinyLlama-1.1B', { hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, vocab_size: 32000 }],
  ];
  const computed = shapes.map(([name, s]) => {
    const c = parseConfig({ model_type: 'llama', ...s });
    const L = c.nLayers;
    const lt = [0, 1, ...Array(L - 2).fill(L - 1)].join('_');
    const lc = { ...c, kvLayerMap: kvLayerMapOf(parseLayerTypes(lt, L), null) };
    const f16 = (cfg) => kvBytesPerToken(cfg, 2);
    const weights = parameterCount(lc) * 2;
    const batch = (cfg) => Math.floor((24 * 2 ** 30 - parameterCount(cfg) * 2) / (f16(cfg) * 4096));
    return { model: name, layerTypes: `0_1_${L - 1}_..._${L - 1}`, standardKvBytesPerToken: f16(c), lckvKvBytesPerToken: f16(lc), kvRatio: f16(lc) / f16(c), weightBytes: weights, standardBatch24GiB: batch(c), lckvBatch24GiB: batch(lc) };
  });
  out.memory = { fixtures: rows, computed };
}

// ---------------------------------------------------------------------------------------------
// 2. Prefill time

if (only.has('prefill')) {
  const modes = [
    ['lckv iterative', await load('lckv', 'iterative', { maxChunk: 512 })],
    ['lckv sequential', await load('lckv', 'sequential', { maxChunk: 512 })],
    ['standard', await load('standard', 'sequential', { maxChunk: 512 })],
  ];
  const ids = modes[2][1].encode(heldOut).slice(0, Math.max(...promptTokens));
  const rows = [];
  for (const n of promptTokens) {
    const prompt = Int32Array.from(ids.slice(0, n));
    const times = modes.map(() => []);
    for (let r = 0; r <= reps; r++) {
      modes.forEach(([, p], i) => {
        const cache = p.createCache(n);
        const t0 = performance.now();
        p.model.forward(prompt, cache);
        const ms = performance.now() - t0;
        cache.dispose();
        if (r > 0) times[i].push(ms); // the first round warms up
      });
    }
    const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
    const ms = times.map(median);
    rows.push({ tokens: n, ...Object.fromEntries(modes.map(([name], i) => [name, ms[i]])), sequentialOverIterative: ms[1] / ms[0], iterativeOverStandard: ms[0] / ms[2] });
  }
  modes.forEach(([, p]) => p.dispose());
  out.prefill = rows;
}

// ---------------------------------------------------------------------------------------------
// 3. Quality

if (only.has('quality')) {
  const rows = [];
  for (const [name, prefill] of [
    ['standard', 'sequential'],
    ['lckv', 'sequential'],
    ['lckv', 'iterative'],
    ['cla', 'sequential'],
  ]) {
    const p = await load(name, prefill, { maxChunk: Math.max(256, pplContext) });
    const r = await p.perplexity(heldOut, { context: pplContext });
    rows.push({ model: name, prefill: name === 'standard' ? 'one pass' : prefill, context: pplContext, tokens: r.tokens, perplexity: r.perplexity });
    p.dispose();
  }
  const seq = rows.find((r) => r.model === 'lckv' && r.prefill === 'sequential').perplexity;
  const it = rows.find((r) => r.model === 'lckv' && r.prefill === 'iterative').perplexity;
  out.quality = { rows, iterativeOverSequential: it / seq };
}

// ---------------------------------------------------------------------------------------------
// 4. Aggregate batched decode

if (only.has('decode')) {
  const fits = (name) => out.memory?.fixtures.find((r) => r.model === name)?.maxBatch;
  const rows = [];
  const std = fits('standard') ?? 16;
  for (const [name, B] of [
    ['standard', std],
    ['lckv', std],
    ['lckv', fits('lckv') ?? 2 * std],
  ]) {
    const p = await load(name, 'sequential', { cacheSize: context });
    const caches = Array.from({ length: B }, () => p.createCache());
    let seqs = caches.map((cache) => ({ ids: Int32Array.of(1), cache }));
    const next = async () => {
      const logits = p.model.forwardBatch(seqs);
      const ids = await p.backend.read(p.model.argmax(logits));
      seqs = caches.map((cache, i) => ({ ids: Int32Array.of(ids[i]), cache }));
    };
    await next(); // the one-token prompts, and a warm-up
    const t0 = performance.now();
    for (let i = 0; i < decodeSteps; i++) await next();
    const s = (performance.now() - t0) / 1000;
    rows.push({ model: name, batch: B, steps: decodeSteps, tokensPerSecond: (B * decodeSteps) / s });
    caches.forEach((c) => c.dispose());
    p.dispose();
  }
  out.decode = rows;
}

// ---------------------------------------------------------------------------------------------

if (has('json')) {
  console.log(JSON.stringify(out, null, 2));
} else {
  const table = (rows, cols) => {
    const cells = [cols.map(([h]) => h), ...rows.map((r) => cols.map(([, f]) => String(f(r))))];
    const w = cols.map((_, i) => Math.max(...cells.map((c) => c[i].length)));
    for (const [j, c] of cells.entries()) {
      console.log(c.map((v, i) => (i === 0 ? v.padEnd(w[i]) : v.padStart(w[i]))).join('  '));
      if (j === 0) console.log(w.map((n) => '-'.repeat(n)).join('  '));
    }
    console.log();
  };
  const mib = (b) => (b / MiB).toFixed(2);
  console.log(`lckv benchmark, backend ${backend}\n`);
  if (out.memory) {
    console.log(`KV cache and the largest batch of ${context}-token caches in ${budget / MiB} MiB (weights included), measured by allocating:`);
    table(out.memory.fixtures, [
      ['model', (r) => r.model],
      ['KV layers', (r) => `${r.kvLayers}/${r.layers}`],
      ['KV bytes/token', (r) => r.kvBytesPerToken],
      ['x standard', (r) => r.kvRatio.toFixed(3)],
      ['weights MiB', (r) => mib(r.weightBytes)],
      ['max batch', (r) => r.maxBatch],
    ]);
    console.log('The paper\'s layout on real shapes (f16 KV, 4096-token sequences, 24 GiB), computed:');
    table(out.memory.computed, [
      ['model', (r) => r.model],
      ['layer_types', (r) => r.layerTypes],
      ['KV B/token std', (r) => r.standardKvBytesPerToken],
      ['KV B/token lckv', (r) => r.lckvKvBytesPerToken],
      ['x', (r) => r.kvRatio.toFixed(3)],
      ['batch std', (r) => r.standardBatch24GiB],
      ['batch lckv', (r) => r.lckvBatch24GiB],
    ]);
  }
  if (out.prefill) {
    console.log(`Prompt encoding, median of ${reps} (ms):`);
    table(out.prefill, [
      ['tokens', (r) => r.tokens],
      ['lckv iterative', (r) => r['lckv iterative'].toFixed(1)],
      ['lckv sequential', (r) => r['lckv sequential'].toFixed(1)],
      ['standard', (r) => r.standard.toFixed(1)],
      ['seq / iter', (r) => r.sequentialOverIterative.toFixed(2)],
      ['iter / std', (r) => r.iterativeOverStandard.toFixed(2)],
    ]);
  }
  if (out.quality) {
    console.log(`Held-out perplexity (${out.quality.rows[0].tokens} tokens scored, context ${pplContext}):`);
    table(out.quality.rows, [
      ['model', (r) => r.model],
      ['prompt encoding', (r) => r.prefill],
      ['perplexity', (r) => r.perplexity.toFixed(3)],
    ]);
    console.log(`iterative / sequential perplexity: ${out.quality.iterativeOverSequential.toFixed(5)}\n`);
  }
  if (out.decode) {
    console.log(`Aggregate batched decode (${decodeSteps} steps, one forward over the batch per step):`);
    table(out.decode, [
      ['model', (r) => r.model],
      ['batch', (r) => r.batch],
      ['tok/s', (r) => r.tokensPerSecond.toFixed(1)],
    ]);
  }
}
