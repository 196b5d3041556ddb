// Bounded load test for lithe-server, on loopback only: starts the server (dist/bin.js) as a child
// process, runs N concurrent streaming clients over a fixed number of requests with a time bound,
// and reports throughput, TTFT and end-to-end latency percentiles, and how every request ended.
//
//   node scripts/load.mjs [--model <dir>] [--concurrency 4] [--requests 32] [--max-tokens 32]
//                         [--parallel 1] [--max-queue 64] [--time-limit 120] [--endpoint chat|completions] [--json]
//
// Without --model it writes a small random-weight model to a temporary directory. Build first
// (pnpm --filter @lithe/server build).
/* global fetch, performance, AbortSignal, TextDecoder */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    concurrency: { type: 'string', default: '4' },
    requests: { type: 'string', default: '32' },
    'max-tokens': { type: 'string', default: '32' },
    parallel: { type: 'string', default: '1' },
    'max-queue': { type: 'string', default: '64' },
    'time-limit': { type: 'string', default: '120' },
    endpoint: { type: 'string', default: 'chat' },
    json: { type: 'boolean', default: false },
  },
});
const int = (name) => {
  const v = Number(args[name]);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`--${name} must be a non-negative integer`);
  return v;
};
const concurrency = Math.max(1, int('concurrency'));
const total = int('requests');
const maxTokens = Math.max(1, int('max-tokens'));
const timeLimitMs = int('time-limit') * 1000;
const endpoint = args.endpoint === 'completions' ? 'completions' : 'chat';

const here = fileURLToPath(new URL('.', import.meta.url));
const bin = join(here, '..', 'dist', 'bin.js');

let modelDir = args.model;
let tempDir = null;
if (!modelDir) {
  // Core's tiny random model, with a chat template, that runs to max_tokens.
  const { MISTRAL_CHAT_TEMPLATE, tinyModel } = await import('@lithe/core/testing');
  tempDir = mkdtempSync(join(tmpdir(), 'lithe-load-'));
  tinyModel({}, 'F32', 1234, { chatTemplate: MISTRAL_CHAT_TEMPLATE, neverEos: true }).write(tempDir);
  modelDir = tempDir;
}

// The server, in its own process so that clients and server do not share an event loop.
const child = spawn(process.execPath, [bin, '--model', modelDir, '--host', '127.0.0.1', '--port', '0', '--quiet', '--model-id', 'load-test', '--parallel', String(int('parallel')), '--max-queue', String(int('max-queue'))], {
  stdio: ['ignore', 'ignore', 'pipe'],
});
let log = '';
const started = new Promise((resolve, reject) => {
  child.stderr.on('data', (d) => {
    log += d.toString();
    if (log.includes('model loaded')) resolve(/listening on (\S+)/.exec(log)[1]);
  });
  child.on('exit', (code) => reject(new Error(`server exited (${code}): ${log}`)));
});
const baseUrl = await started;

function body(i) {
  const common = { model: 'load-test', max_tokens: maxTokens, temperature: 0.8, seed: i, stream: true, stream_options: { include_usage: true } };
  return endpoint === 'chat'
    ? { ...common, messages: [{ role: 'user', content: `Request ${i}: tell me a story about the number ${i}.` }] }
    : { ...common, prompt: `Request ${i}: once upon a time` };
}

/** One streamed request: { outcome: 'completed' | 'clean-error' | 'failed', ttftMs, e2eMs, tokens, status }. */
async function one(i, signal) {
  const t0 = performance.now();
  let ttftMs = null;
  try {
    const res = await fetch(`${baseUrl}/v1/${endpoint === 'chat' ? 'chat/completions' : 'completions'}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body(i)),
      signal,
    });
    if (!res.ok) {
      const err = await res.json().catch(() => null);
      const clean = err && typeof err.error?.message === 'string' && typeof err.error?.type === 'string';
      return { outcome: clean ? 'clean-error' : 'failed', status: res.status, e2eMs: performance.now() - t0 };
    }
    const decoder = new TextDecoder();
    let buf = '';
    let tokens = 0;
    let done = false;
    let finish = null;
    for await (const bytes of res.body) {
      buf += decoder.decode(bytes, { stream: true });
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const data = event.slice('data: '.length);
        if (data === '[DONE]') {
          done = true;
          continue;
        }
        const chunk = JSON.parse(data);
        if (chunk.error) return { outcome: 'clean-error', status: 200, e2eMs: performance.now() - t0 };
        const choice = chunk.choices[0];
        const text = choice ? (choice.delta?.content ?? choice.text ?? '') : '';
        if (text && ttftMs === null) ttftMs = performance.now() - t0;
        if (choice?.finish_reason) finish = choice.finish_reason;
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
      }
    }
    const ok = done && finish !== null;
    return { outcome: ok ? 'completed' : 'failed', status: 200, ttftMs, e2eMs: performance.now() - t0, tokens };
  } catch {
    return { outcome: 'failed', status: 0, e2eMs: performance.now() - t0 };
  }
}

const deadline = AbortSignal.timeout(timeLimitMs);
const results = [];
let next = 0;
const wall0 = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < total && !deadline.aborted) results.push(await one(next++, deadline));
  }),
);
const wallS = (performance.now() - wall0) / 1000;

// Graceful stop: SIGTERM, and the server must exit 0.
child.kill('SIGTERM');
const exitCode = await new Promise((resolve) => child.on('exit', (code) => resolve(code)));
if (tempDir) rmSync(tempDir, { recursive: true, force: true });

const pct = (xs, p) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const completed = results.filter((r) => r.outcome === 'completed');
const ttfts = completed.map((r) => r.ttftMs).filter((v) => v !== null);
const e2es = completed.map((r) => r.e2eMs);
const generated = completed.reduce((n, r) => n + r.tokens, 0);
const round = (v, d = 1) => (v === null ? null : Number(v.toFixed(d)));
const report = {
  endpoint,
  concurrency,
  requests: total,
  maxTokens,
  parallel: int('parallel'),
  wallSeconds: round(wallS, 2),
  completed: completed.length,
  cleanErrors: results.filter((r) => r.outcome === 'clean-error').length,
  failed: results.filter((r) => r.outcome === 'failed').length,
  notStarted: total - results.length,
  requestsPerSecond: round(completed.length / wallS, 2),
  generatedTokensPerSecond: round(generated / wallS, 1),
  ttftMs: { p50: round(pct(ttfts, 50)), p99: round(pct(ttfts, 99)) },
  e2eMs: { p50: round(pct(e2es, 50)), p99: round(pct(e2es, 99)) },
  serverExitCode: exitCode,
};

if (args.json) console.log(JSON.stringify(report, null, 2));
else {
  console.log(`lithe-server load: ${concurrency} clients, ${total} ${endpoint} requests of ${maxTokens} tokens, parallel ${report.parallel}`);
  console.log(`  wall time         ${report.wallSeconds} s`);
  console.log(`  completed         ${report.completed}   clean errors ${report.cleanErrors}   failed ${report.failed}   not started ${report.notStarted}`);
  console.log(`  throughput        ${report.requestsPerSecond} req/s, ${report.generatedTokensPerSecond} generated tok/s`);
  console.log(`  TTFT              p50 ${report.ttftMs.p50} ms   p99 ${report.ttftMs.p99} ms`);
  console.log(`  end-to-end        p50 ${report.e2eMs.p50} ms   p99 ${report.e2eMs.p99} ms`);
  console.log(`  server exit code  ${exitCode} (after SIGTERM)`);
}
process.exitCode = report.failed === 0 && exitCode === 0 ? 0 : 1;
