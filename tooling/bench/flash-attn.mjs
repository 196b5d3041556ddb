#!/usr/bin/env node
// Flash attention benchmark (@lithe/flash-attn): prints a table, or one JSON object with --json.
//
//   node tooling/bench/flash-attn.mjs [--json] [--threads 2] [--contexts 1024,4096,16384]
//        [--prefill-contexts 1024,4096] [--runs 5] [--prefill-runs 2] [--kv f16]
//        [--quant int8,int4] [--quant-contexts 1024,4096,16384] [--quant-prefill-contexts 4096]
//        [--model <TinyLlama-shaped dir or .gguf> [--e2e-contexts 4096,16384] [--e2e-tokens 3]]
//
// TinyLlama's attention shape (32 query heads, 4 KV heads, head dim 64), one layer's cache of
// `context` tokens filled with random keys and values, on the wasm backend:
// - decode: one query row at position context − 1 (attention time per decoded token, per layer);
// - prefill: a 1024-row chunk ending at the context (rows context − 1024 .. context − 1).
// Core's wasm attention kernel and the flash kernel run on the same backend, cache and queries,
// alternating, and the table gives the median of each and their ratio. Outputs are compared too
// (max |core − flash|), so a fast wrong kernel cannot pass unnoticed.
// Quantized rows (--quant, '' for none): a kvQuant cache (int8 / int4, asymmetric) filled the same
// way, kv-quant's own attention kernel against the flash kernel reading it through core's
// `quantized` layout (dequantized in the tile), side by side the same way.
//
// With --model: end-to-end decode tok/s of that model at long context, core attention vs
// flashAttention(), each in its own pipeline (loaded one after the other). The cache is filled
// with synthetic keys and values up to the context (a real 16k prefill is O(S²) and would take
// hours here), then the whole model decodes --e2e-tokens tokens over it. Make a TinyLlama-shaped
// model with `node tooling/fixtures/make-random-model.mjs --out /tmp/tinyllama --preset tinyllama --dtype f16`.
import { performance } from 'node:perf_hooks';
import { DenseKVCache, WasmBackend, createPipeline, globalKernels } from '@lithe/core';
import { FlashWasm, flashAttention } from '@lithe/flash-attn';
import { QuantizedKVCache, attentionQuantized, kvQuantFormat } from '@lithe/kv-quant';

const argv = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? fallback : argv[i + 1];
};
const has = (name) => argv.includes(`--${name}`);
const list = (s) => (s ? s.split(',').map(Number).filter((n) => n > 0) : []);

const threads = Number(flag('threads', '2'));
const contexts = list(flag('contexts', '1024,4096,16384'));
const prefillContexts = list(flag('prefill-contexts', '1024,4096'));
const runs = Number(flag('runs', '5'));
const prefillRuns = Number(flag('prefill-runs', '2'));
const kvDtype = flag('kv', 'f16');
const quantKinds = (flag('quant', 'int8,int4') || '').split(',').filter(Boolean);
const quantContexts = list(flag('quant-contexts', '1024,4096,16384'));
const quantPrefillContexts = list(flag('quant-prefill-contexts', '4096'));
const CHUNK = 1024;
const [nHeads, nKVHeads, headDim] = [32, 4, 64];

const backend = await WasmBackend.create({ threads });
const flash = await FlashWasm.load(backend);
const coreAttention = globalKernels.get('wasm', 'attention', 'dense');

let seed = 12345;
const rand = () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 2 ** 32 - 0.5;
};
const randomTensor = (n, shape, scale = 2) => {
  const t = backend.allocate(shape, 'f32', 'other');
  const a = t.handle;
  for (let i = 0; i < n; i++) a[i] = rand() * scale;
  return t;
};

function makeCache(tokens, quant) {
  const kvWidth = nKVHeads * headDim;
  const spec = { backend, nLayers: 1, nKVHeads, headDim, capacity: tokens, dtype: kvDtype };
  const cache = quant ? new QuantizedKVCache(spec, kvQuantFormat({ bits: Number(quant.slice(3)) })) : new DenseKVCache(spec);
  const step = 4096;
  for (let at = 0; at < tokens; at += step) {
    const n = Math.min(step, tokens - at);
    const k = randomTensor(n * kvWidth, [n, kvWidth]);
    const v = randomTensor(n * kvWidth, [n, kvWidth]);
    cache.write(0, k, v);
    cache.commit(n);
    backend.dispose(k);
    backend.dispose(v);
  }
  return cache;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function compare(cache, rows, startPos, n, reference = coreAttention) {
  const coreAttention = reference;
  const q = randomTensor(rows * nHeads * headDim, [rows, nHeads * headDim]);
  const outCore = backend.allocate([rows, nHeads * headDim], 'f32', 'other');
  const outFlash = backend.allocate([rows, nHeads * headDim], 'f32', 'other');
  const p = { nHeads, nKVHeads, headDim, scale: 1 / Math.sqrt(headDim), startPos };
  const layer = cache.layer(0);
  const core = [], fl = [];
  // One warm-up call each, then alternate.
  coreAttention(q, layer, p, outCore);
  flash.attention(q, layer, p, outFlash);
  for (let r = 0; r < n; r++) {
    let t = performance.now();
    coreAttention(q, layer, p, outCore);
    core.push(performance.now() - t);
    t = performance.now();
    flash.attention(q, layer, p, outFlash);
    fl.push(performance.now() - t);
  }
  let diff = 0;
  for (let i = 0; i < outCore.size; i++) diff = Math.max(diff, Math.abs(outCore.handle[i] - outFlash.handle[i]));
  for (const t of [q, outCore, outFlash]) backend.dispose(t);
  return { coreMs: median(core), flashMs: median(fl), speedup: median(core) / median(fl), maxAbsDiff: diff };
}

const results = [];
for (const context of [...new Set([...contexts, ...prefillContexts])].sort((a, b) => a - b)) {
  const cache = makeCache(context);
  if (contexts.includes(context)) results.push({ phase: 'decode', context, rows: 1, ...compare(cache, 1, context - 1, runs) });
  if (prefillContexts.includes(context)) {
    const rows = Math.min(CHUNK, context);
    results.push({ phase: 'prefill', context, rows, ...compare(cache, rows, context - rows, prefillRuns) });
  }
  cache.dispose();
}
for (const kind of quantKinds) {
  if (kind !== 'int8' && kind !== 'int4') throw new Error(`--quant takes int8 and/or int4, got '${kind}'`);
  for (const context of [...new Set([...quantContexts, ...quantPrefillContexts])].sort((a, b) => a - b)) {
    const cache = makeCache(context, kind);
    if (quantContexts.includes(context)) results.push({ phase: 'decode', cache: kind, context, rows: 1, ...compare(cache, 1, context - 1, runs, attentionQuantized) });
    if (quantPrefillContexts.includes(context)) {
      const rows = Math.min(CHUNK, context);
      results.push({ phase: 'prefill', cache: kind, context, rows, ...compare(cache, rows, context - rows, prefillRuns, attentionQuantized) });
    }
    cache.dispose();
  }
}
await backend.close();

/** Decode tok/s of the model over a cache filled to `context`, with and without flash attention. */
async function endToEnd(model, contextsE2e, tokens) {
  const rows = [];
  for (const attention of ['core', 'flash']) {
    const be = await WasmBackend.create({ threads });
    const pipeline = await createPipeline({ model, backend: be, cacheSize: Math.max(...contextsE2e) + tokens + 1, kvDtype, plugins: attention === 'flash' ? [flashAttention()] : [] });
    const c = pipeline.model.config;
    for (const context of contextsE2e) {
      const cache = pipeline.createCache(context + tokens + 1);
      const width = c.nKVHeads * c.headDim;
      const chunk = 1024;
      const k = be.allocate([chunk, width], 'f32', 'other');
      const v = be.allocate([chunk, width], 'f32', 'other');
      for (let i = 0; i < k.size; i++) [k.handle[i], v.handle[i]] = [rand() * 2, rand() * 2];
      for (let done = 0; done < context; ) {
        const n = Math.min(chunk, context - done);
        for (let l = 0; l < cache.nLayers; l++) cache.write(l, n === chunk ? k : be.view(k, [n, width]), n === chunk ? v : be.view(v, [n, width]));
        cache.commit(n);
        done += n;
      }
      be.dispose(k);
      be.dispose(v);
      let token = 7;
      const step = async () => {
        await be.read(pipeline.model.forward(Int32Array.of(token), cache));
        token = (token * 31 + 1) % c.vocabSize;
      };
      await step();
      const t0 = performance.now();
      for (let i = 0; i < tokens; i++) await step();
      rows.push({ attention, context, tokens, decodeTokensPerSecond: (tokens * 1000) / (performance.now() - t0) });
      cache.dispose();
    }
    pipeline.dispose();
    await be.close();
  }
  return contextsE2e.map((context) => {
    const [core, flash] = ['core', 'flash'].map((a) => rows.find((r) => r.attention === a && r.context === context).decodeTokensPerSecond);
    return { context, tokens, coreTokS: core, flashTokS: flash, speedup: flash / core };
  });
}

const model = flag('model', null);
const e2e = model ? await endToEnd(model, list(flag('e2e-contexts', '4096,16384')), Number(flag('e2e-tokens', '3'))) : null;

const out = { shape: { nHeads, nKVHeads, headDim }, kvDtype, backend: 'wasm', threads, simd: backend.simd, runs, prefillRuns, results, ...(e2e ? { model, endToEnd: e2e } : {}) };
if (has('json')) {
  console.log(JSON.stringify(out, null, 2));
} else {
  console.log(`attention of one layer, ${nHeads} heads / ${nKVHeads} KV heads x ${headDim}, wasm ${threads} threads (median of ${runs} decode / ${prefillRuns} prefill runs)`);
  console.log("(reference: core's kernel on the dense cache, kv-quant's kernel on int8 / int4 caches)");
  console.log('| cache | phase | context | query rows | reference ms | flash ms | speed-up | max abs diff |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of results) console.log(`| ${r.cache ?? kvDtype} | ${r.phase} | ${r.context} | ${r.rows} | ${r.coreMs.toFixed(3)} | ${r.flashMs.toFixed(3)} | ${r.speedup.toFixed(2)}x | ${r.maxAbsDiff.toExponential(1)} |`);
  if (e2e) {
    console.log(`\nend-to-end decode of ${model} over a cache filled to the context (${e2e[0].tokens} tokens timed)`);
    console.log('| context | core tok/s | flash tok/s | speed-up |');
    console.log('|---|---|---|---|');
    for (const r of e2e) console.log(`| ${r.context} | ${r.coreTokS.toFixed(2)} | ${r.flashTokS.toFixed(2)} | ${r.speedup.toFixed(2)}x |`);
  }
}
