#!/usr/bin/env node
// KV cache quantization benchmark (@lithe/kv-quant): prints tables, or one JSON object with --json.
//
//   node --expose-gc tooling/bench/kv-quant.mjs [--json] [--layers 22] [--max-context 32768]
//        [--decode-tokens 2] [--sessions 1,8,16,32] [--session-size 2048] [--only contexts,sessions,quality]
//
// 1. torchao-style context sweep: a random model with TinyLlama's attention shape (22 layers, 32 query
//    heads, 4 KV heads x 64, hidden 2048) and a reduced MLP and vocabulary, at contexts 1k..32k x
//    {f16 dense (core's default), f32 dense, int8, int4}: KV bytes, peak memory, decode tok/s at that context. The cache is
//    filled with synthetic keys and values (a model prefill of 32k tokens is O(S^2) and would take
//    hours here); decode then runs the whole model over the filled cache.
// 2. lmdeploy-style sessions: 1, 8, 16, 32 caches of 2048 tokens held at once, each running one token
//    through the model, then filled to the end with synthetic K/V (so every page of the cache is
//    touched): KV bytes, peak memory, memory per additional session.
// 3. The same byte formulas for Llama-2-7B (lmdeploy's 2048-token session) and Llama-3.1-8B at 128k
//    (torchao), computed, not measured.
// 4. Quality: perplexity of the tiny-brown fixture on its held-out text, f16 / f32 vs int8 / int4.
//
// Each format runs in its own Node process so that the process peak RSS belongs to it.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { CpuBackend, DenseKVCache, LlamaModel, createPipeline, parseConfig } from '@lithe/core';
import { QuantizedKVCache, attentionQuantized, kvQuant, kvQuantFormat, quantizedKVBytes } from '@lithe/kv-quant';

const argv = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? fallback : argv[i + 1];
};
const has = (name) => argv.includes(`--${name}`);

const root = fileURLToPath(new URL('../../', import.meta.url));
const MiB = 2 ** 20;
// The baseline is core's dense cache in its default f16; f32 shows what it was before.
const FORMATS = { f16: { dense: 'f16' }, f32: { dense: 'f32' }, int8: { bits: 8 }, int4: { bits: 4 } };

// ---------------------------------------------------------------------------------------------
// The random model: TinyLlama's attention shape, small MLP and vocabulary.

function benchConfig(layers, maxPositions) {
  return parseConfig({
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: 2048,
    hidden_size: 2048,
    intermediate_size: 512,
    num_hidden_layers: layers,
    num_attention_heads: 32,
    num_key_value_heads: 4,
    max_position_embeddings: maxPositions,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
  });
}

/** Uniform random numbers from a xorshift generator: fast enough for a billion weights. */
function filler(seed = 0x9e3779b9) {
  let s = seed >>> 0;
  return (array, scale) => {
    for (let i = 0; i < array.length; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      array[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale;
    }
  };
}

function randomModel(backend, config) {
  const fill = filler();
  const t = (shape, scale) => {
    const x = backend.allocate(shape, 'f32', 'weights');
    if (scale === 'ones') x.handle.fill(1);
    else fill(x.handle, scale);
    return x;
  };
  const { hiddenSize: D, intermediateSize: I, nHeads: H, nKVHeads: KV, headDim: hd, vocabSize: V } = config;
  const w = 0.04;
  const layers = Array.from({ length: config.nLayers }, () => ({
    attnNorm: t([D], 'ones'),
    q: t([H * hd, D], w),
    k: t([KV * hd, D], w),
    v: t([KV * hd, D], w),
    o: t([D, H * hd], w),
    qBias: null,
    kBias: null,
    vBias: null,
    mlpNorm: t([D], 'ones'),
    gate: t([I, D], w),
    up: t([I, D], w),
    down: t([D, I], w),
  }));
  return new LlamaModel(config, backend, { embed: t([V, D], 1), layers, norm: t([D], 'ones'), lmHead: t([V, D], w) });
}

function makeCache(backend, config, capacity, format) {
  const spec = { backend, nLayers: config.nLayers, nKVHeads: config.nKVHeads, headDim: config.headDim, capacity };
  return format.dense ? new DenseKVCache({ ...spec, dtype: format.dense }) : new QuantizedKVCache(spec, kvQuantFormat(format));
}

function setupBackend(format) {
  const backend = new CpuBackend();
  if (!format.dense) backend.kernels.register('cpu', 'attention', attentionQuantized, { variant: kvQuantFormat(format).kind });
  return backend;
}

const gc = () => globalThis.gc?.();
const maxRss = () => process.resourceUsage().maxRSS * 1024;

/** Fills the cache to `tokens` with synthetic keys and values, 256 tokens per write. */
function fillSynthetic(backend, config, cache, tokens) {
  const chunk = 256;
  const width = config.nKVHeads * config.headDim;
  const k = backend.allocate([chunk, width], 'f32', 'other');
  const v = backend.allocate([chunk, width], 'f32', 'other');
  const fill = filler(12345);
  fill(k.handle, 2);
  fill(v.handle, 1);
  for (let done = 0; done < tokens; ) {
    const n = Math.min(chunk, tokens - done);
    const kk = n === chunk ? k : backend.view(k, [n, width]);
    const vv = n === chunk ? v : backend.view(v, [n, width]);
    for (let l = 0; l < config.nLayers; l++) cache.write(l, kk, vv);
    cache.commit(n);
    done += n;
  }
  k.dispose();
  v.dispose();
}

// ---------------------------------------------------------------------------------------------
// Child tasks: one format per process.

function contextTask({ format, layers, contexts, decodeTokens }) {
  const config = benchConfig(layers, Math.max(...contexts));
  const backend = setupBackend(format);
  const model = randomModel(backend, config);
  const rows = [];
  let warm = false;
  for (const S of contexts) {
    gc();
    const rssBefore = process.memoryUsage().rss;
    backend.memory.resetPeak();
    const cache = makeCache(backend, config, S, format);
    const kvPeakAtInit = backend.memory.snapshot().peak.kv;
    const extra = warm ? 0 : 1;
    fillSynthetic(backend, config, cache, S - decodeTokens - extra);
    let token = 7;
    const step = () => {
      const logits = model.forward(Int32Array.of(token), cache);
      token = (token * 31 + 1) % config.vocabSize;
      return logits;
    };
    if (!warm) step();
    warm = true;
    const t0 = performance.now();
    for (let i = 0; i < decodeTokens; i++) step();
    const ms = performance.now() - t0;
    const snap = backend.memory.snapshot();
    rows.push({
      context: S,
      kvBytes: cache.bytes,
      kvPeakAtInit,
      weightBytes: model.weightBytes,
      trackedPeakBytes: snap.peakTotal,
      trackedPeakKvBytes: snap.peak.kv,
      rssBeforeCache: rssBefore,
      peakRss: maxRss(),
      decodeTokensPerSecond: (decodeTokens * 1000) / ms,
    });
    cache.dispose();
    model.releaseActivations();
  }
  return rows;
}

function sessionsTask({ format, layers, sessions, sessionSize }) {
  const config = benchConfig(layers, sessionSize);
  const backend = setupBackend(format);
  const model = randomModel(backend, config);
  const rows = [];
  for (const n of sessions) {
    gc();
    backend.memory.resetPeak();
    const caches = Array.from({ length: n }, () => makeCache(backend, config, sessionSize, format));
    for (const c of caches) {
      model.forward(Int32Array.of(5), c);
      fillSynthetic(backend, config, c, sessionSize - c.length);
    }
    const snap = backend.memory.snapshot();
    rows.push({
      sessions: n,
      kvBytes: caches.reduce((s, c) => s + c.bytes, 0),
      trackedPeakBytes: snap.peakTotal,
      weightBytes: model.weightBytes,
      peakRss: maxRss(),
    });
    for (const c of caches) c.dispose();
  }
  return rows;
}

async function qualityTask() {
  const model = `${root}tooling/fixtures/models/tiny-brown`;
  const file = `${root}tooling/fixtures/data/brown-heldout.txt`;
  if (!existsSync(`${model}/model.safetensors`) || !existsSync(file)) return null;
  const text = readFileSync(file, 'utf8');
  const rows = [];
  const variants = [
    ['f16', []],
    ['f32', [], 'f32'],
    ['int8', [kvQuant({ bits: 8 })]],
    ['int4', [kvQuant({ bits: 4 })]],
    ['int8-sym', [kvQuant({ bits: 8, mode: 'symmetric' })]],
    ['int4-sym', [kvQuant({ bits: 4, mode: 'symmetric' })]],
  ];
  for (const [name, plugins, kvDtype] of variants) {
    const p = await createPipeline({ model, plugins, cacheSize: 512, kvDtype });
    const r = await p.perplexity(text, { context: 512 });
    const cache = p.createCache(512);
    rows.push({ format: name, perplexity: r.perplexity, tokens: r.tokens, kvBytes512: cache.bytes });
    cache.dispose();
    p.dispose();
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Computed tables for the seeds' claims.

function computed() {
  const f16 = (s) => 2 * s.nLayers * s.capacity * s.nKVHeads * s.headDim * 2;
  const shapes = [
    { model: 'Llama-2-7B, one 2048-token session (lmdeploy)', nLayers: 32, nKVHeads: 32, headDim: 128, capacity: 2048 },
    { model: 'Llama-3.1-8B at 128k tokens (torchao)', nLayers: 32, nKVHeads: 8, headDim: 128, capacity: 131072 },
  ];
  return shapes.map((s) => ({
    model: s.model,
    f16Bytes: f16(s),
    int8Bytes: quantizedKVBytes(s, kvQuantFormat({ bits: 8 })),
    int4Bytes: quantizedKVBytes(s, kvQuantFormat({ bits: 4 })),
  }));
}

// ---------------------------------------------------------------------------------------------
// Driver and tables.

function child(task) {
  const out = execFileSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', JSON.stringify(task)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
  });
  return JSON.parse(out);
}

const mib = (b) => (b / MiB).toFixed(1);
function table(headers, rows) {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

async function main() {
  if (has('child')) {
    const task = JSON.parse(flag('child'));
    const result = task.kind === 'context' ? contextTask(task) : sessionsTask(task);
    process.stdout.write(JSON.stringify(result));
    return;
  }
  const json = has('json');
  const log = (s) => process.stderr.write(`${s}\n`);
  const layers = Number(flag('layers', 22));
  const maxContext = Number(flag('max-context', 32768));
  const decodeTokens = Number(flag('decode-tokens', 2));
  const contexts = [1024, 2048, 4096, 8192, 16384, 32768].filter((c) => c <= maxContext);
  const sessions = flag('sessions', '1,8,16,32').split(',').map(Number);
  const sessionSize = Number(flag('session-size', 2048));
  const started = performance.now();

  const only = flag('only', 'contexts,sessions,quality').split(',');
  const results = { model: { ...benchConfig(layers, maxContext), note: 'random weights; TinyLlama attention shape, reduced MLP and vocabulary' }, contexts: {}, sessions: {}, computed: computed(), quality: null };
  for (const [name, format] of only.includes('contexts') ? Object.entries(FORMATS) : []) {
    log(`context sweep: ${name} ...`);
    results.contexts[name] = child({ kind: 'context', format, layers, contexts, decodeTokens });
    log(JSON.stringify(results.contexts[name]));
  }
  for (const [name, format] of only.includes('sessions') ? Object.entries(FORMATS) : []) {
    log(`sessions: ${name} ...`);
    results.sessions[name] = child({ kind: 'sessions', format, layers, sessions, sessionSize });
    log(JSON.stringify(results.sessions[name]));
  }
  if (only.includes('quality')) {
    log('quality: perplexity of tiny-brown ...');
    results.quality = await qualityTask();
  }
  results.seconds = (performance.now() - started) / 1000;

  if (json) {
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    return;
  }

  if (only.includes('contexts')) printContexts(results, contexts, decodeTokens);
  if (only.includes('sessions')) printSessions(results, sessions, sessionSize);
  printComputed(results);
  if (only.includes('quality')) printQuality(results);
  console.log(`\n(${results.seconds.toFixed(0)} s)`);
}

function printContexts(results, contexts, decodeTokens) {
  const c = results.model;
  console.log(`\n## Context sweep (torchao-style): ${c.nLayers} layers x ${c.nKVHeads} KV heads x ${c.headDim}, ${c.nHeads} query heads, hidden ${c.hiddenSize}`);
  console.log(`random weights (MLP ${c.intermediateSize}, vocab ${c.vocabSize}); cache filled with synthetic K/V, then ${decodeTokens} decode steps through the whole model. MiB = 2^20 bytes.`);
  console.log('peak (tracked) = bytes the backend counted at its highest (weights + KV + activations); peak RSS = the process\'s max resident set.\n');
  const fp = results.contexts.f16;
  const rows = [];
  for (let i = 0; i < contexts.length; i++) {
    for (const name of Object.keys(FORMATS)) {
      const r = results.contexts[name][i];
      const f16 = fp[i].kvBytes;
      rows.push([
        name === 'f16' ? `${contexts[i]}` : '',
        name,
        mib(r.kvBytes),
        (r.kvBytes / f16).toFixed(3),
        r.kvPeakAtInit === r.kvBytes ? 'yes' : `no (${mib(r.kvPeakAtInit)})`,
        mib(r.trackedPeakBytes),
        mib(r.peakRss),
        r.decodeTokensPerSecond.toFixed(2),
      ]);
    }
  }
  console.log(table(['context', 'cache', 'KV MiB', 'x f16', 'init = KV bytes', 'peak tracked MiB', 'peak RSS MiB', 'decode tok/s'], rows));

  const last = contexts.length - 1;
  console.log(`\nAt ${contexts[last]} tokens: `);
  for (const name of ['int8', 'int4']) {
    const r = results.contexts[name][last];
    const kvSaved = fp[last].kvBytes - r.kvBytes;
    const peakSaved = fp[last].trackedPeakBytes - r.trackedPeakBytes;
    const rssSaved = fp[last].peakRss - r.peakRss;
    console.log(`  ${name}: KV saves ${mib(kvSaved)} MiB vs f16; tracked peak lower by ${mib(peakSaved)} MiB, peak RSS lower by ${mib(rssSaved)} MiB`);
  }

}

function printSessions(results, sessions, sessionSize) {
  console.log(`\n## Concurrent sessions (lmdeploy-style): ${sessionSize}-token caches, each running one token through the model, then filled to the end with synthetic K/V\n`);
  const srows = [];
  for (let i = 0; i < sessions.length; i++) {
    for (const name of Object.keys(FORMATS)) {
      const r = results.sessions[name][i];
      srows.push([name === 'f16' ? `${sessions[i]}` : '', name, mib(r.kvBytes), mib(r.trackedPeakBytes), mib(r.peakRss)]);
    }
  }
  console.log(table(['sessions', 'cache', 'KV MiB', 'peak tracked MiB', 'peak RSS MiB'], srows));
  const n = sessions.length - 1;
  console.log(`\nMemory per additional session (from ${sessions[0]} to ${sessions[n]} sessions):`);
  for (const name of Object.keys(FORMATS)) {
    const s = results.sessions[name];
    const per = (k) => (s[n][k] - s[0][k]) / (sessions[n] - sessions[0]);
    console.log(`  ${name.padEnd(5)} KV ${mib(per('kvBytes'))} MiB, tracked peak ${mib(per('trackedPeakBytes'))} MiB, RSS ${mib(per('peakRss'))} MiB`);
  }

}

function printComputed(results) {
  console.log('\n## The seeds\' models, from the same byte formula (computed, not measured)\n');
  console.log(
    table(
      ['model', 'f16 MiB', 'int8 MiB', 'int8 x', 'int4 MiB', 'int4 x'],
      results.computed.map((r) => [r.model, mib(r.f16Bytes), mib(r.int8Bytes), (r.int8Bytes / r.f16Bytes).toFixed(3), mib(r.int4Bytes), (r.int4Bytes / r.f16Bytes).toFixed(3)]),
    ),
  );

}

function printQuality(results) {
  console.log('\n## Quality: perplexity of tiny-brown on brown-heldout.txt (windows of 512)\n');
  if (!results.quality) console.log('tooling/fixtures/models/tiny-brown is not there yet; skipped.');
  else {
    const base = results.quality[0].perplexity;
    console.log(
      table(
        ['cache', 'perplexity', 'vs f16', 'tokens', 'KV bytes (512 tokens)'],
        results.quality.map((r) => [r.format, r.perplexity.toFixed(4), `${((r.perplexity / base - 1) * 100).toFixed(3)}%`, r.tokens, r.kvBytes512]),
      ),
    );
  }
}

await main();
