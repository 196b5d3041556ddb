// Load benchmark of lithe-server's continuous batching and prefix caching, with the official
// `openai` client, on loopback:
//
// 1. 1, 2, 4, 8, 16 concurrent streaming clients (one completion each, started together) against one
//    server with --parallel 16: aggregate generated tok/s, TTFT p50/p99, inter-token latency
//    p50/p99, errors and lost requests (neither a whole completion nor a clean error); from the
//    server's /metrics, the batched steps of each level: mean batch size, mean model time per step,
//    the model's mean idle gap before each step while requests ran (sampling, streaming and scheduling overhead) and the share of the wall time the model was busy.
// 2. What batching can give on this backend at most: the time of one batched decode step of N rows
//    against N steps of one row, measured in this process before the servers start.
// 3. A multi-turn chat whose system prompt is about 1k tokens, against a server with prefix caching
//    and one with --no-prefix-cache: TTFT of every turn and the cached tokens usage reports.
//
//   node scripts/bench-load.mjs [--model FILE.gguf|DIR] [--clients 1,2,4,8,16] [--max-tokens 16]
//                               [--system-tokens 1000] [--turns 3] [--threads N] [--only load|chat] [--json]
//
// Without --model it uses (and makes once) a random TinyLlama-shaped Q4_0 GGUF under
// tooling/bench/.work (gitignored). Build first (pnpm build). The machine may be shared: the
// numbers are noisy, compare the ratios within one run.
/* global performance, fetch */
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const work = path.join(root, 'tooling/bench/.work');
const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    clients: { type: 'string', default: '1,2,4,8,16' },
    'max-tokens': { type: 'string', default: '16' },
    'system-tokens': { type: 'string', default: '1000' },
    turns: { type: 'string', default: '3' },
    threads: { type: 'string' },
    only: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const clientCounts = args.clients.split(',').map(Number);
const maxTokens = Number(args['max-tokens']);
const systemTokens = Number(args['system-tokens']);
const turns = Number(args.turns);
for (const [name, v] of [['clients', Math.min(...clientCounts)], ['max-tokens', maxTokens], ['system-tokens', systemTokens], ['turns', turns]]) {
  if (!(Number.isSafeInteger(v) && v >= 1)) throw new Error(`--${name} must be positive integers`);
}
const log = (...m) => console.error('[bench-load]', ...m);

/** The random TinyLlama-shaped Q4_0 GGUF (made once, as tooling/bench/llama-cpp.mjs makes it). */
async function tinyLlamaQ4() {
  const file = path.join(work, 'tinyllama-q4_0.gguf');
  if (existsSync(file)) return file;
  mkdirSync(work, { recursive: true });
  const hf = path.join(work, 'tinyllama-f16');
  if (!existsSync(path.join(hf, 'config.json'))) {
    log(`writing a random TinyLlama-shaped model to ${hf}`);
    const r = spawnSync(process.execPath, [path.join(root, 'tooling/fixtures/make-random-model.mjs'), '--out', hf, '--preset', 'tinyllama', '--dtype', 'f16'], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`make-random-model.mjs failed (${r.status})`);
  }
  log(`converting it to ${file}`);
  const { convertToGGUF, hfWeightSource, loadHFDir, withRecordedFormats } = await import('@lithe/core');
  const { nodeModelFiles } = await import('@lithe/core/node');
  const dir = await loadHFDir(nodeModelFiles(hf));
  const out = createWriteStream(`${file}.part`);
  try {
    const model = { name: 'tinyllama', config: dir.config, weights: withRecordedFormats(dir, hfWeightSource(dir)), tokenizerJson: dir.tokenizerJson, tokenizerConfig: dir.tokenizerConfig };
    await convertToGGUF(model, 'Q4_0', async (chunk) => {
      if (!out.write(chunk)) await new Promise((res) => out.once('drain', res));
    });
    await new Promise((res, rej) => out.end((err) => (err ? rej(err) : res())));
  } finally {
    await dir.close();
  }
  renameSync(`${file}.part`, file);
  return file;
}

/** A lithe-server child process; resolves with its URL once the model is loaded. */
async function startServer(model, extra) {
  const bin = path.join(here, '..', 'dist', 'bin.js');
  const flags = ['--model', model, '--host', '127.0.0.1', '--port', '0', '--quiet', '--model-id', 'bench', '--chat-template', 'chatml', '--cache-size', String(systemTokens + 512), ...extra];
  if (args.threads) flags.push('--threads', args.threads);
  const child = spawn(process.execPath, [bin, ...flags], { stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  const url = await new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      text += d.toString();
      if (text.includes('model loaded')) resolve(/listening on (\S+)/.exec(text)[1]);
    });
    child.on('exit', (code) => reject(new Error(`lithe-server exited (${code}): ${text}`)));
  });
  log(text.trim().split('\n').at(-1));
  const stop = () =>
    new Promise((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.kill('SIGTERM');
    });
  return { url, stop, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 600_000 }) };
}

const pct = (xs, p) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const round = (v, d = 1) => (v === null ? null : Number(v.toFixed(d)));

/** One streamed completion: when each token arrived, and how it ended. */
async function streamOne(client, i) {
  const t0 = performance.now();
  const times = [];
  let finish = null;
  try {
    const stream = await client.completions.create({ model: 'bench', prompt: `Request ${i}: the story of the old mill by the river, told again`, max_tokens: maxTokens, temperature: 0.8, seed: i, stream: true });
    for await (const c of stream) {
      if (c.choices[0]?.text) times.push(performance.now());
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    return { outcome: finish ? 'completed' : 'lost', t0, times };
  } catch (err) {
    return { outcome: err instanceof OpenAI.APIError && err.status ? 'error' : 'lost', t0, times, error: String(err) };
  }
}

/** The _sum and _count of the step histograms in the server's /metrics. */
async function stepTotals(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const get = (name) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return {
    steps: get('lithe_batch_step_seconds_count'),
    modelS: get('lithe_batch_step_seconds_sum'),
    gapS: get('lithe_batch_step_gap_seconds_sum'),
    sequences: get('lithe_batch_size_sum'),
  };
}

async function loadLevel(server, n) {
  const before = await stepTotals(server.url);
  const t0 = performance.now();
  const rs = await Promise.all(Array.from({ length: n }, (_, i) => streamOne(server.client, i)));
  const wall = (performance.now() - t0) / 1000;
  const after = await stepTotals(server.url);
  const steps = after.steps - before.steps;
  const tokens = rs.reduce((s, r) => s + r.times.length, 0);
  const ttft = rs.filter((r) => r.times.length > 0).map((r) => r.times[0] - r.t0);
  const itl = rs.flatMap((r) => r.times.slice(1).map((t, k) => t - r.times[k]));
  return {
    clients: n,
    tokens,
    wallS: round(wall, 2),
    tokPerS: round(tokens / wall, 2),
    ttftP50Ms: round(pct(ttft, 50)),
    ttftP99Ms: round(pct(ttft, 99)),
    itlP50Ms: round(pct(itl, 50)),
    itlP99Ms: round(pct(itl, 99)),
    errors: rs.filter((r) => r.outcome === 'error').length,
    lost: rs.filter((r) => r.outcome === 'lost').length,
    steps,
    meanBatch: steps ? round((after.sequences - before.sequences) / steps, 2) : null,
    stepMs: steps ? round(((after.modelS - before.modelS) * 1000) / steps, 2) : null,
    gapMs: steps ? round(((after.gapS - before.gapS) * 1000) / steps, 2) : null,
    modelBusy: round((after.modelS - before.modelS) / wall, 2),
  };
}

// About `systemTokens` tokens of ordinary text: a sentence repeated with its number.
function systemPrompt(tokensWanted) {
  const parts = [];
  for (let i = 0; parts.join(' ').length < tokensWanted * 4.2; i++) parts.push(`Rule ${i}: the miller opens the wooden doors at dawn and sweeps the floor before the farmers come.`);
  return parts.join(' ');
}

async function chatTurns(client) {
  const messages = [{ role: 'system', content: systemPrompt(systemTokens) }];
  const out = [];
  for (let t = 0; t < turns; t++) {
    messages.push({ role: 'user', content: `Question ${t + 1}: what happens next at the mill?` });
    const t0 = performance.now();
    let ttft = null;
    let text = '';
    let usage = null;
    const stream = await client.chat.completions.create({ model: 'bench', messages, max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true } });
    for await (const c of stream) {
      const piece = c.choices[0]?.delta?.content;
      if (piece && ttft === null) ttft = performance.now() - t0;
      if (piece) text += piece;
      if (c.usage) usage = c.usage;
    }
    messages.push({ role: 'assistant', content: text });
    log(`chat turn ${t + 1}: TTFT ${round(ttft)} ms, cached ${usage?.prompt_tokens_details?.cached_tokens}`);
    out.push({ turn: t + 1, promptTokens: usage?.prompt_tokens ?? null, cachedTokens: usage?.prompt_tokens_details?.cached_tokens ?? null, ttftMs: round(ttft) });
  }
  return out;
}

/** ms of one decode step over n sequences (one token each), for each n; median of a few, alternated. */
async function stepCosts(model, counts) {
  const { createPipeline } = await import('@lithe/core');
  const p = await createPipeline({ model, backend: 'wasm', cacheSize: 64, threads: args.threads ? Number(args.threads) : undefined });
  try {
    const caches = Array.from({ length: Math.max(...counts) }, () => p.createCache(64));
    for (const c of caches) p.model.forward(Int32Array.from([1, 2, 3, 4]), c);
    const times = new Map(counts.map((n) => [n, []]));
    for (let r = 0; r < 3; r++) {
      for (const n of counts) {
        for (const c of caches) c.truncate(4);
        const t0 = performance.now();
        const logits = p.model.forwardBatch(caches.slice(0, n).map((cache) => ({ ids: Int32Array.of(5), cache, logits: 'last' })));
        await p.backend.read(p.model.argmax(logits));
        times.get(n).push(performance.now() - t0);
      }
    }
    const one = pct(times.get(counts[0]), 50);
    return counts.map((n) => ({ rows: n, stepMs: round(pct(times.get(n), 50)), bound: round((n * one) / pct(times.get(n), 50), 2) }));
  } finally {
    p.dispose();
  }
}

const model = args.model ?? (await tinyLlamaQ4());
const doLoad = args.only !== 'chat';
const doChat = args.only !== 'load';
const report = { model: path.basename(model), maxTokens, steps: doLoad ? await stepCosts(model, clientCounts) : [], load: [], chat: { prefixCache: [], noPrefixCache: [] } };

const batching = await startServer(model, ['--parallel', String(Math.max(...clientCounts)), '--max-queue', '64']);
try {
  if (doLoad) {
    await loadLevel(batching, 1); // warm-up: first-call allocations
    for (const n of clientCounts) {
      const r = await loadLevel(batching, n);
      log(JSON.stringify(r));
      report.load.push(r);
    }
  }
  if (doChat) report.chat.prefixCache = await chatTurns(batching.client);
} finally {
  report.serverExit = await batching.stop();
}
if (doChat) {
  const plain = await startServer(model, ['--parallel', '1', '--no-prefix-cache']);
  try {
    report.chat.noPrefixCache = await chatTurns(plain.client);
  } finally {
    await plain.stop();
  }
}

const one = report.load.find((r) => r.clients === 1)?.tokPerS;
for (const r of report.load) r.vsOne = one ? round(r.tokPerS / one, 2) : null;
const cut = report.chat.noPrefixCache.slice(1).map((r, i) => round(r.ttftMs / report.chat.prefixCache[i + 1].ttftMs, 1));
report.chat.ttftCut = cut;

if (args.json) {
  console.log(JSON.stringify(report, null, 2));
} else {
  console.log(`lithe-server load (${report.model}, ${maxTokens} tokens per request, one server with --parallel ${Math.max(...clientCounts)}; noisy, shared machine)`);
  if (doLoad) {
    console.log('decode rows | step ms | most batching can give (rows x 1-row step / step)');
    for (const r of report.steps) console.log(`${String(r.rows).padStart(11)} | ${String(r.stepMs).padStart(7)} | ${r.bound}x`);
    console.log('');
    console.log('clients | tok/s  | vs 1  | TTFT p50 / p99 ms | inter-token p50 / p99 ms | errors | lost | mean batch | step ms | gap ms | model busy');
    for (const r of report.load) {
      console.log(
        `${String(r.clients).padStart(7)} | ${String(r.tokPerS).padStart(6)} | ${String(r.vsOne).padStart(5)} | ${`${r.ttftP50Ms} / ${r.ttftP99Ms}`.padStart(17)} | ${`${r.itlP50Ms} / ${r.itlP99Ms}`.padStart(24)} | ${String(r.errors).padStart(6)} | ${String(r.lost).padStart(4)} | ${String(r.meanBatch).padStart(10)} | ${String(r.stepMs).padStart(7)} | ${String(r.gapMs).padStart(6)} | ${Math.round(r.modelBusy * 100)}%`,
      );
    }
  }
  if (doChat) console.log(`\nmulti-turn chat, ~${systemTokens}-token system prompt, TTFT per turn (ms):`);
  if (doChat) console.log('turn | prompt tokens | cached (prefix cache) | TTFT prefix cache | TTFT no prefix cache | cut');
  report.chat.prefixCache.forEach((r, i) => {
    const o = report.chat.noPrefixCache[i];
    console.log(`${String(r.turn).padStart(4)} | ${String(r.promptTokens).padStart(13)} | ${String(r.cachedTokens).padStart(21)} | ${String(r.ttftMs).padStart(17)} | ${String(o.ttftMs).padStart(20)} | ${i > 0 ? `${cut[i - 1]}x` : '-'}`);
  });
}
