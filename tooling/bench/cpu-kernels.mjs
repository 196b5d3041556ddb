// CPU kernels: matrix-vector GB/s per weight format at TinyLlama's shapes for the TypeScript
// reference kernels, the wasm backend on 1 thread and on 2, and end-to-end decode tok/s of a
// TinyLlama-shaped random model (f16, and q8_0 / q4_0 quantized as it loads).
//
//   node tooling/fixtures/make-random-model.mjs --out /tmp/tinyllama-f16 --preset tinyllama --dtype f16
//   pnpm --filter @lithe/core build
//   node tooling/bench/cpu-kernels.mjs [--model /tmp/tinyllama-f16] [--json] [--quick]
//        [--formats f32,f16,q8_0,q4_0,q4_1,q4_k,q6_k] [--no-matvec] [--no-decode] [--tokens 32] [--threads 2]
//        [--rows 1,2,4,5,8,16] [--rows-formats q4_0,q8_0]
//
// Rows roofline (--rows): one linear over R activation rows, its weight streamed from memory (copies
// cycled, as decoding reads it) and held in cache (one small copy, called again and again). The
// in-cache time is the kernel's arithmetic alone, so in-cache(R) / streamed(1) bounds from below
// what a forward over R rows can cost against one row, whatever the memory system does.
//
// Decoding covers f16, q8_0 and q4_0 (quantized as the model loads); the others are matvec only.
//
// Every result is the median of several timed rounds; the TS, 1-thread and 2-thread numbers of one
// shape are measured back to back, so their ratios hold even on a busy machine. Each matvec cycles
// through enough copies of the weight (256 MB or more) that it reads from memory, not cache, as
// decoding does.
import { existsSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { CpuBackend, WasmBackend, createPipeline, decodeHalfInto, definePlugin, f32ToF16, quantizeQ4_0, quantizeQ4_1, quantizeQ8_0 } from '@lithe/core';

const { values: opts } = parseArgs({
  options: {
    model: { type: 'string', default: '/tmp/tinyllama-f16' },
    json: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    formats: { type: 'string', default: 'f32,f16,q8_0,q4_0' },
    'no-matvec': { type: 'boolean', default: false },
    'no-decode': { type: 'boolean', default: false },
    tokens: { type: 'string', default: '32' },
    threads: { type: 'string', default: '2' },
    rows: { type: 'string' },
    'rows-formats': { type: 'string', default: 'q4_0,q8_0' },
  },
});
const formats = opts.formats.split(',');
const maxThreads = Number(opts.threads);
const log = (...a) => {
  if (!opts.json) console.log(...a);
  else console.error(...a);
};

// Measured on this machine kind with 2 threads (ENVIRONMENT.md); llama-cpp.mjs runs both side by side.
const LLAMA_CPP = { f16: { tokPerSec: 12.5, GBps: 27.5 }, q8_0: { tokPerSec: 19.7, GBps: 23 }, q4_0: { tokPerSec: 24.6, GBps: 15 } };
const CEILING_GBPS = 32;

// [out, in]: q/o, gate/up, down, lm_head.
const SHAPES = [
  [2048, 2048],
  [5632, 2048],
  [2048, 5632],
  [32000, 2048],
];

let seed = 12345;
function randn(n, scale) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const u = (seed + 1) / 4294967297;
    seed = (seed * 1103515245 + 12345) >>> 0;
    const v = seed / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u)) * scale;
    a[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) a[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return a;
}

// Where the f16 scales sit in a block, and the block's size in bytes and values.
const K_QUANTS = { q4_k: { bytes: 144, values: 256, scales: [0, 2] }, q6_k: { bytes: 210, values: 256, scales: [208] } };

function encode(format, w) {
  if (format === 'f32') return new Uint8Array(w.buffer);
  if (format === 'f16') return new Uint8Array(Uint16Array.from(w, f32ToF16).buffer);
  if (format === 'q8_0') return quantizeQ8_0(w);
  if (format === 'q4_0') return quantizeQ4_0(w);
  if (format === 'q4_1') return quantizeQ4_1(w);
  // Core has no k-quant quantizer: random quants with plausible scales (this measures speed only).
  const k = K_QUANTS[format];
  if (!k) throw new Error(`unknown format ${format}`);
  const bytes = new Uint8Array((w.length / k.values) * k.bytes);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (Math.random() * 256) | 0;
  for (let b = 0; b < bytes.length; b += k.bytes) for (const at of k.scales) bytes.set([0x19, 0x14], b + at); // f16 0.00098
  return bytes;
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/** Seconds per matvec: median of rounds, each cycling over the copies for at least `minMs`. */
function timeMatvec(be, copies, x, y, rounds, minMs) {
  const k = be.kernels.get(be.name, 'linear', copies[0].dtype);
  for (let i = 0; i < Math.min(2, copies.length); i++) k(x, copies[i], null, y);
  const per = [];
  for (let r = 0; r < rounds; r++) {
    let calls = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < minMs || calls < copies.length) {
      k(x, copies[calls % copies.length], null, y);
      calls++;
      t = performance.now();
    }
    per.push((t - t0) / 1000 / calls);
  }
  return median(per);
}

async function matvec() {
  const cpu = new CpuBackend();
  const wasm = {};
  for (const n of [1, maxThreads]) wasm[n] ??= await WasmBackend.create({ threads: n });
  const rows = [];
  for (const format of formats) {
    for (const [outF, inF] of SHAPES) {
      const bytes = encode(format, randn(outF * inF, 0.02));
      const nCopies = Math.max(1, Math.min(8, Math.ceil((256 << 20) / bytes.length)));
      const xData = randn(inF, 1);
      const row = { format, shape: [outF, inF], weightBytes: bytes.length };
      const backends = [['ts', cpu], ...Object.entries(wasm).map(([n, b]) => [`wasm${n}`, b])];
      for (const [name, be] of backends) {
        // The TS kernels are slow: fewer rounds and one copy (still far larger than the caches for most shapes).
        const slow = name === 'ts';
        const copies = Array.from({ length: slow ? Math.min(2, nCopies) : nCopies }, () => be.upload(bytes, [outF, inF], format, 'weights'));
        const x = be.upload(new Uint8Array(xData.buffer.slice(0)), [1, inF], 'f32', 'activations');
        const y = be.allocate([1, outF], 'f32', 'activations');
        const s = timeMatvec(be, copies, x, y, slow || opts.quick ? 3 : 7, slow ? 100 : 250);
        row[name] = { ms: +(s * 1000).toFixed(3), GBps: +(bytes.length / s / 1e9).toFixed(2) };
        for (const t of [...copies, x, y]) t.dispose();
      }
      rows.push(row);
      const cell = (n) => (row[n] ? `${row[n].GBps.toFixed(2).padStart(6)} GB/s` : '');
      log(`${format.padEnd(5)} ${`${outF}x${inF}`.padEnd(11)} ts ${cell('ts')}   wasm 1T ${cell('wasm1')}   wasm ${maxThreads}T ${cell(`wasm${maxThreads}`)}   (${(row[`wasm${maxThreads}`].GBps / row.ts.GBps).toFixed(1)}x ts)`);
    }
  }
  for (const b of Object.values(wasm)) await b.close();
  return rows;
}

/**
 * Per format: ms of one [2048 x 2048] linear over R rows, streamed (64 MB+ of copies) and in cache
 * (one 1-2 MB copy: each of 2 threads reads half, inside its L2), on the wasm backend.
 */
async function rowsRoofline() {
  const be = await WasmBackend.create({ threads: maxThreads });
  const R = opts.rows.split(',').map(Number);
  const [outF, inF] = [2048, 2048];
  const out = [];
  for (const format of opts['rows-formats'].split(',')) {
    const bytes = encode(format, randn(outF * inF, 0.02));
    const copies = Array.from({ length: Math.ceil((64 << 20) / bytes.length) }, () => be.upload(bytes, [outF, inF], format, 'weights'));
    const row = { format, shape: [outF, inF], weightBytes: bytes.length, simd: be.simd, rows: [] };
    for (const r of R) {
      const x = be.upload(new Uint8Array(randn(r * inF, 1).buffer), [r, inF], 'f32', 'activations');
      const y = be.allocate([r, outF], 'f32', 'activations');
      // Alternated so that both see the same machine load.
      const streamed = [];
      const cached = [];
      for (let k = 0; k < 5; k++) {
        streamed.push(timeMatvec(be, copies, x, y, 1, 150));
        cached.push(timeMatvec(be, copies.slice(0, 1), x, y, 1, 150));
      }
      row.rows.push({ rows: r, streamedMs: +(median(streamed) * 1e3).toFixed(3), cachedMs: +(median(cached) * 1e3).toFixed(3) });
      x.dispose();
      y.dispose();
    }
    for (const c of copies) c.dispose();
    const one = row.rows[0].streamedMs;
    for (const r of row.rows) Object.assign(r, { streamedVs1: +(r.streamedMs / one).toFixed(2), cachedVsStreamed1: +(r.cachedMs / one).toFixed(2) });
    log(`\nrows roofline ${format} [${outF}x${inF}], wasm ${maxThreads}T ${be.simd} (vs: against R=1 streamed)`);
    log('R    streamed ms  vs     in cache ms  vs (the floor)');
    for (const r of row.rows) log(`${String(r.rows).padEnd(4)} ${r.streamedMs.toFixed(3).padStart(11)}  ${r.streamedVs1.toFixed(2).padStart(5)}x ${r.cachedMs.toFixed(3).padStart(11)}  ${r.cachedVsStreamed1.toFixed(2).padStart(5)}x`);
    out.push(row);
  }
  await be.close();
  return out;
}

/** Quantizes linear and lm_head weights as they load (the embedding stays in its file dtype). */
const quantizeAtLoad = definePlugin((format) => ({
  name: `bench-${format}`,
  transformWeights: (t, info) => {
    if (info.role !== 'linear' && info.role !== 'lm_head') return t;
    let f = t.handle;
    if (t.dtype !== 'f32') {
      f = new Float32Array(t.size);
      decodeHalfInto(t.handle, t.dtype, f);
    }
    const q = t.backend.upload((format === 'q8_0' ? quantizeQ8_0 : quantizeQ4_0)(f), t.shape, format, 'weights');
    t.dispose();
    return q;
  },
}));

async function decode() {
  if (!existsSync(opts.model)) {
    log(`no model at ${opts.model}: make one with node tooling/fixtures/make-random-model.mjs --out ${opts.model} --preset tinyllama --dtype f16`);
    return [];
  }
  const prompt = 'Once upon a time, in a small village by the sea, there lived';
  const runs = [];
  const plan = [];
  for (const format of formats.filter((f) => ['f16', 'q8_0', 'q4_0'].includes(f))) {
    plan.push(['wasm', maxThreads, format], ['wasm', 1, format]);
  }
  if (formats.includes('f16') && !opts.quick) plan.push(['cpu', 1, 'f16']);
  for (const [backend, threads, format] of plan) {
    const t0 = performance.now();
    const p = await createPipeline({ model: opts.model, backend, threads, cacheSize: 256, plugins: format === 'f16' ? [] : [quantizeAtLoad(format)] });
    const loadS = (performance.now() - t0) / 1000;
    const tokens = backend === 'cpu' ? 6 : Number(opts.tokens);
    const rates = [];
    for (let r = 0; r < (backend === 'cpu' || opts.quick ? 1 : 3); r++) {
      const res = await p.generate(prompt, { maxTokens: tokens, temperature: 0, stopOnEos: false }).result;
      rates.push(res.timings.decodeTokensPerSecond);
    }
    const m = p.model;
    // Bytes read per decoded token: every matrix once, one embedding row.
    const perToken = m.weightBytes - m.embed.byteLength + m.embed.byteLength / m.config.vocabSize;
    const tokPerSec = median(rates);
    const run = { backend, threads, format, tokPerSec: +tokPerSec.toFixed(2), GBps: +((perToken * tokPerSec) / 1e9).toFixed(1), weightBytesPerToken: Math.round(perToken), loadSeconds: +loadS.toFixed(1), rounds: rates.map((r) => +r.toFixed(2)) };
    runs.push(run);
    const ref = LLAMA_CPP[format];
    log(
      `decode ${format.padEnd(5)} ${backend} ${threads}T: ${run.tokPerSec.toFixed(2)} tok/s, ${run.GBps} GB/s of ${CEILING_GBPS}` +
        (ref && backend === 'wasm' && threads === 2 ? ` (llama.cpp 2T: ${ref.tokPerSec} tok/s, ${((100 * run.tokPerSec) / ref.tokPerSec).toFixed(0)}%)` : '') +
        `  [rounds ${run.rounds.join(', ')}; load ${run.loadSeconds} s]`,
    );
    p.dispose();
  }
  return runs;
}

const cpus = os.cpus();
const result = {
  machine: { cpu: cpus[0]?.model, logicalCores: cpus.length, node: process.version },
  ceilingGBps: CEILING_GBPS,
  llamaCpp: LLAMA_CPP,
  rowsRoofline: opts.rows ? await rowsRoofline() : [],
  matvec: opts['no-matvec'] ? [] : await matvec(),
  decode: opts['no-decode'] ? [] : await decode(),
};
if (opts.json) console.log(JSON.stringify(result, null, 2));
