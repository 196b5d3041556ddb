#!/usr/bin/env node
// StreamingLLM benchmark (@lithe/streaming): the paper's figure for lithe. Prints a table (or one JSON
// object with --json) and writes an SVG plot of NLL against position in the stream.
//
//   node tooling/bench/streaming.mjs [--json] [--tokens 20480] [--sinks 4] [--window 124]
//        [--dense-tokens 4096] [--oracle-every 128] [--backend wasm] [--threads 1]
//        [--svg tooling/bench/streaming.svg]
//
// The text: the held-out Brown documents (cp29, cr01..cr09: ~29k tokens, never trained on) as plain
// English, the first --tokens of them, scored as one stream by the tiny-brown fixture (trained on
// windows of 128 tokens). Every token is scored from what the cache keeps before it:
//   dense         core's dense cache holding the whole stream, up to --dense-tokens (attention
//                 over every earlier token; positions grow past the trained length)
//   window        streaming, 0 sinks + (sinks + window) recent tokens
//   sinks+window  streaming, --sinks sinks + --window recent tokens
// and a baseline at every --oracle-every-th position:
//   recompute     dense attention over exactly the last (sinks + window) tokens, re-encoded from
//                 position 0 for that one prediction (the sliding window with re-computation of the
//                 paper: the quality a window of that size can have, at O(window^2) per token)
// NLL is reported per 1k-token bucket; perplexity = exp(mean NLL).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DenseKVCache, createPipeline } from '@lithe/core';
import { streaming } from '@lithe/streaming';
import { HELDOUT_FRACTION, loadDocuments } from '../fixtures/prepare-corpus.mjs';

const argv = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? fallback : argv[i + 1];
};
const num = (name, fallback) => {
  const v = Number(flag(name, fallback));
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`--${name} must be a non-negative integer, got ${flag(name, fallback)}`);
  return v;
};
const json = argv.includes('--json');
const TOKENS = num('tokens', 20480);
const SINKS = num('sinks', 4);
const WINDOW = num('window', 124);
const DENSE_TOKENS = num('dense-tokens', 4096);
const ORACLE_EVERY = num('oracle-every', 128);
const BUCKET = 1024;
const backend = flag('backend', 'wasm');
const threads = num('threads', 1);
const root = fileURLToPath(new URL('../../', import.meta.url));
const svgPath = flag('svg', `${root}tooling/bench/streaming.svg`);
const modelDir = `${root}tooling/fixtures/models/tiny-brown`;
const log = (s) => json || process.stderr.write(`${s}\n`);

// -------------------------------------------------------------------------------------------------
// The stream.

function heldOutText() {
  const docs = loadDocuments();
  const held = docs.slice(docs.length - Math.max(1, Math.round(docs.length * HELDOUT_FRACTION)));
  return { names: held.map((d) => d.name), text: held.map((d) => d.paragraphs.join('\n')).join('\n\n') + '\n' };
}

/** -log softmax(logits[row])[target], in f64 with the max subtracted. */
function nllOf(logits, row, V, target) {
  const o = row * V;
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[o + i] > max) max = logits[o + i];
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(logits[o + i] - max);
  return max + Math.log(sum) - logits[o + target];
}

/** NLL of ids[t + 1] given ids[0..t] through `cache`, for t < n - 1; fed in pieces of 256. */
async function scoreStream(pipeline, cache, ids, n) {
  const V = pipeline.config.vocabSize;
  const nll = new Float64Array(n - 1);
  cache.reset();
  pipeline.backend.memory.resetPeak();
  const t0 = performance.now();
  for (let start = 0; start + 1 < n; start += 256) {
    const piece = ids.slice(start, Math.min(n - 1, start + 256));
    const logits = await pipeline.backend.read(pipeline.model.forward(Int32Array.from(piece), cache, { logits: 'all' }));
    for (let t = 0; t < piece.length; t++) nll[start + t] = nllOf(logits, t, V, ids[start + t + 1]);
    if (!json && start % 4096 === 0) process.stderr.write(`\r  ${start} / ${n}`);
  }
  if (!json) process.stderr.write('\r');
  return { nll, seconds: (performance.now() - t0) / 1000, kvBytes: cache.bytes, peakBytes: pipeline.backend.memory.snapshot().peakTotal };
}

/** The recompute baseline at positions t (predicting ids[t + 1]) from the last `size` tokens. */
async function scoreRecompute(pipeline, cache, ids, n, size, every) {
  const V = pipeline.config.vocabSize;
  const out = new Map();
  for (let t = size - 1; t + 1 < n; t += every) {
    cache.reset();
    const logits = await pipeline.backend.read(pipeline.model.forward(Int32Array.from(ids.slice(t - size + 1, t + 1)), cache));
    out.set(t, nllOf(logits, 0, V, ids[t + 1]));
  }
  return out;
}

const mean = (a) => a.reduce((s, v) => s + v, 0) / a.length;

function buckets(nll) {
  const out = [];
  for (let b = 0; b * BUCKET < nll.length; b++) out.push(mean(Array.from(nll.subarray(b * BUCKET, (b + 1) * BUCKET))));
  return out;
}

// -------------------------------------------------------------------------------------------------
// The SVG: NLL (moving average over 256 tokens) against tokens, one line per method.

function svgPlot(series, { trained, cacheSize, tokens }) {
  const [W, H, L, R, T, B] = [900, 420, 60, 170, 30, 50];
  const smooth = (nll, k = 256) => {
    const pts = [];
    let s = 0;
    for (let i = 0; i < nll.length; i++) {
      s += nll[i];
      if (i >= k) s -= nll[i - k];
      if (i >= k - 1 && (i % 32 === 0 || i === nll.length - 1)) pts.push([i + 1, s / k]);
    }
    return pts;
  };
  const lines = series.map((s) => ({ ...s, pts: smooth(s.nll) }));
  const ys = lines.flatMap((l) => l.pts.map((p) => p[1]));
  const [y0, y1] = [Math.floor(Math.min(...ys)), Math.ceil(Math.max(...ys))];
  const x = (v) => L + ((W - L - R) * v) / tokens;
  const y = (v) => T + ((H - T - B) * (y1 - v)) / (y1 - y0);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="18" font-size="14">tiny-brown on ${tokens} held-out Brown tokens: NLL (nats, mean of the last 256 tokens)</text>`,
  ];
  for (let v = y0; v <= y1; v++) {
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`, `<text x="${L - 8}" y="${y(v) + 4}" text-anchor="end">${v}</text>`);
  }
  const step = tokens > 10000 ? 4096 : 1024;
  for (let v = 0; v <= tokens; v += step) parts.push(`<line x1="${x(v)}" x2="${x(v)}" y1="${T}" y2="${H - B}" stroke="#eee"/>`, `<text x="${x(v)}" y="${H - B + 16}" text-anchor="middle">${v}</text>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">position in the stream (tokens)</text>`);
  [[trained, `trained length ${trained}`], [cacheSize, `cache ${cacheSize} tokens`]].forEach(([at, label], i) => {
    parts.push(`<line x1="${x(at)}" x2="${x(at)}" y1="${T}" y2="${H - B}" stroke="#999" stroke-dasharray="4 3"/>`, `<text x="${x(at) + 3}" y="${T + 12 + 14 * i}" fill="#666">${label}</text>`);
  });
  parts.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#333"/>`);
  lines.forEach((l, i) => {
    const d = l.pts.map(([a, b], j) => `${j ? 'L' : 'M'}${x(a).toFixed(1)},${y(Math.min(Math.max(b, y0), y1)).toFixed(1)}`).join('');
    parts.push(`<path d="${d}" fill="none" stroke="${l.color}" stroke-width="1.6"/>`);
    parts.push(`<line x1="${W - R + 12}" x2="${W - R + 34}" y1="${T + 14 + i * 20}" y2="${T + 14 + i * 20}" stroke="${l.color}" stroke-width="3"/>`, `<text x="${W - R + 40}" y="${T + 18 + i * 20}">${l.label}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

// -------------------------------------------------------------------------------------------------

async function main() {
  const size = SINKS + WINDOW;
  const { names, text } = heldOutText();
  const open = (plugins, cacheSize) => createPipeline({ model: modelDir, backend, threads, plugins, cacheSize });
  const dense = await open([], Math.max(DENSE_TOKENS, size));
  const ids = dense.encode(text);
  if (ids.length < TOKENS) throw new Error(`the held-out text has ${ids.length} tokens, fewer than --tokens ${TOKENS}`);
  const n = TOKENS;
  const trained = 128;
  log(`stream: ${n} tokens of ${names.join(', ')}; tiny-brown (trained on ${trained}-token windows), ${backend} backend, ${threads} thread(s)`);

  const runs = [];
  log(`dense over the first ${Math.min(DENSE_TOKENS, n)} tokens...`);
  const denseCache = new DenseKVCache({ backend: dense.backend, nLayers: dense.config.nLayers, nKVHeads: dense.config.nKVHeads, headDim: dense.config.headDim, capacity: DENSE_TOKENS });
  runs.push({ name: 'dense', label: `dense (${DENSE_TOKENS} cache)`, sinks: null, window: null, color: '#d62728', ...(await scoreStream(dense, denseCache, ids, Math.min(DENSE_TOKENS, n))) });
  denseCache.dispose();
  log('recompute baseline...');
  const oracleCache = dense.createCache(size);
  const oracle = await scoreRecompute(dense, oracleCache, ids, n, size, ORACLE_EVERY);
  oracleCache.dispose();
  dense.dispose();

  for (const [name, sinks, window, color] of [['window', 0, size, '#ff7f0e'], ['sinks+window', SINKS, WINDOW, '#1f77b4']]) {
    log(`${name} (${sinks} sinks + ${window})...`);
    // Scoring never rolls back: no rollback slots, so the KV bytes are the window's alone.
    const p = await open([streaming({ sinks, window, rollback: 0 })]);
    const cache = p.createCache();
    runs.push({ name, label: `${sinks} sinks + ${window} window`, sinks, window, color, ...(await scoreStream(p, cache, ids, n)) });
    cache.dispose();
    p.dispose();
  }

  const oracleAt = [...oracle.keys()];
  const oraclePpl = Math.exp(mean([...oracle.values()]));
  const report = {
    model: 'tiny-brown',
    trained_length: trained,
    backend,
    threads,
    tokens: n,
    documents: names,
    bucket: BUCKET,
    cache_slots: size,
    recompute: { every: ORACLE_EVERY, positions: oracleAt.length, perplexity: oraclePpl },
    runs: runs.map((r) => {
      const b = buckets(r.nll);
      // The first bucket whose every token already sees a full window.
      const firstFull = Math.ceil(size / BUCKET);
      const atOracle = oracleAt.filter((t) => t < r.nll.length).map((t) => r.nll[t]);
      return {
        name: r.name,
        sinks: r.sinks,
        window: r.window,
        tokens_scored: r.nll.length,
        perplexity: Math.exp(mean(Array.from(r.nll))),
        perplexity_at_recompute_positions: Math.exp(mean(atOracle)),
        vs_recompute: Math.exp(mean(atOracle)) / Math.exp(mean(oracleAt.filter((t) => t < r.nll.length).map((t) => oracle.get(t)))),
        nll_per_bucket: b,
        last_vs_first_full_bucket: b.length > firstFull ? Math.exp(b.at(-1)) / Math.exp(b[firstFull]) : null,
        kv_bytes: r.kvBytes,
        peak_memory_bytes: r.peakBytes,
        seconds: r.seconds,
      };
    }),
  };
  writeFileSync(svgPath, svgPlot(runs, { trained, cacheSize: size, tokens: n }) + '\n');
  if (json) return console.log(JSON.stringify(report, null, 2));

  const f = (v, d = 3) => (v === null || v === undefined ? '-' : v.toFixed(d));
  const MiB = (v) => `${(v / 2 ** 20).toFixed(2)} MiB`;
  const rows = [['method', 'tokens', 'perplexity', 'ppl @ recompute pos', 'vs recompute', 'last / first full bucket', 'KV bytes', 'peak memory', 'seconds']];
  for (const r of report.runs) {
    rows.push([r.name === 'dense' ? 'dense' : `${r.sinks} sinks + ${r.window}`, String(r.tokens_scored), f(r.perplexity, 2), f(r.perplexity_at_recompute_positions, 2), f(r.vs_recompute), f(r.last_vs_first_full_bucket), MiB(r.kv_bytes), MiB(r.peak_memory_bytes), f(r.seconds, 1)]);
  }
  rows.push([`recompute ${size}`, String(oracleAt.length), '-', f(oraclePpl, 2), '1.000', '-', '-', '-', '-']);
  const table = (t) => {
    const w = t[0].map((_, c) => Math.max(...t.map((r) => r[c].length)));
    return t.map((r) => r.map((v, c) => (c === 0 ? v.padEnd(w[c]) : v.padStart(w[c]))).join('  ')).join('\n');
  };
  console.log(table(rows));
  console.log(`\nNLL per ${BUCKET}-token bucket (nats):`);
  const nb = Math.max(...report.runs.map((r) => r.nll_per_bucket.length));
  const bt = [['bucket', ...report.runs.map((r) => (r.name === 'dense' ? 'dense' : `${r.sinks}+${r.window}`))]];
  for (let b = 0; b < nb; b++) bt.push([`${b * BUCKET}-${(b + 1) * BUCKET}`, ...report.runs.map((r) => f(r.nll_per_bucket[b]))]);
  console.log(table(bt));
  console.log(`\nplot: ${svgPath}`);
}

await main();
