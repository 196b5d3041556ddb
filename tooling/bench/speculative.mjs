#!/usr/bin/env node
// Speculative decoding benchmark (@lithe/speculative), gpt-fast's table for lithe: prints a table per
// model, or one JSON object with --json.
//
//   node tooling/bench/speculative.mjs [--json] [--backend wasm] [--threads 2] [--tokens 64] [--k 4]
//        [--reps 3] [--tinyllama-layers 4] [--only fixture,tinyllama]
//
// Rows: plain greedy decoding, then speculative decoding with self-int8, self-int4, the small trained
// draft (tooling/fixtures/models/tiny-brown-draft, fixture only) and prompt lookup. Columns: decode
// tok/s (median over --reps), speed-up against plain measured in the same rep, acceptance (drafts kept
// / drafted), mean accepted drafts per verification step, and whether the greedy tokens equal plain
// decoding's. All pipelines of a model are loaded once and run alternately, rep after rep.
//
// Models: the trained tiny-brown fixture (4 layers, hidden 128, vocab 32000, f32) and a random model of
// TinyLlama-1.1B's shape (hidden 2048, FFN 5632, 32 heads / 4 KV heads, vocab 32000, f16) with
// --tinyllama-layers layers (22 is the real depth; fewer keep the run short on a shared machine).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createPipeline } from '@lithe/core';
import { speculative } from '@lithe/speculative';

const argv = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? fallback : argv[i + 1];
};
const has = (name) => argv.includes(`--${name}`);

const root = fileURLToPath(new URL('../../', import.meta.url));
const backendName = flag('backend', 'wasm');
const threads = Number(flag('threads', '2'));
const genTokens = Number(flag('tokens', '64'));
const k = Number(flag('k', '4'));
const reps = Number(flag('reps', '3'));
const tinyLayers = Number(flag('tinyllama-layers', '4'));
const only = flag('only', 'fixture,tinyllama').split(',');
const json = has('json');
const log = (s) => !json && process.stderr.write(`${s}\n`);

const FIXTURE = `${root}tooling/fixtures/models/tiny-brown`;
const DRAFT = `${root}tooling/fixtures/models/tiny-brown-draft`;

function tinyLlamaDir() {
  const dir = `/tmp/lithe-bench-tinyllama-${tinyLayers}l`;
  if (!existsSync(`${dir}/model.safetensors`)) {
    log(`writing a random TinyLlama-shaped model with ${tinyLayers} layers to ${dir}`);
    execFileSync(process.execPath, [`${root}tooling/fixtures/make-random-model.mjs`, '--out', dir, '--preset', 'tinyllama', '--layers', String(tinyLayers)], { stdio: 'inherit' });
  }
  return dir;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function benchModel(name, model, drafts, prompt) {
  const cacheSize = 512;
  const open = (plugins) => createPipeline({ model, backend: backendName, threads, cacheSize, plugins });
  const rows = [{ name: 'plain', pipeline: await open([]) }];
  for (const [label, draft] of drafts) {
    try {
      rows.push({ name: label, pipeline: await open([speculative({ draft, tokens: k })]) });
    } catch (e) {
      rows.push({ name: label, error: e.message });
    }
  }
  const opts = { temperature: 0, maxTokens: genTokens, stopOnEos: false };
  const ids = rows[0].pipeline.encode(prompt);
  // Warm-up: one short run each (kernel compilation, caches, the draft's first allocation).
  for (const r of rows) if (r.pipeline) await r.pipeline.generate(ids, { ...opts, maxTokens: 8 }).result;
  for (const r of rows) Object.assign(r, { tps: [], speedups: [] });
  for (let rep = 0; rep < reps; rep++) {
    let plainTps = 0;
    for (const r of rows) {
      if (!r.pipeline) continue;
      const res = await r.pipeline.generate(ids, opts).result;
      const tps = res.timings.decodeTokensPerSecond;
      if (r.name === 'plain') plainTps = tps;
      r.tps.push(tps);
      r.speedups.push(tps / plainTps);
      r.tokenIds = res.tokenIds;
      r.stats = res.stats?.speculative;
    }
    log(`${name}: rep ${rep + 1}/${reps}: ${rows.map((r) => `${r.name} ${r.tps?.at(-1)?.toFixed(1) ?? '-'}`).join(', ')}`);
  }
  const plainIds = rows[0].tokenIds.join();
  const out = rows.map((r) =>
    r.error
      ? { draft: r.name, error: r.error }
      : {
          draft: r.name,
          decode_tok_s: median(r.tps),
          speedup: median(r.speedups),
          acceptance: r.stats ? r.stats.accepted / Math.max(1, r.stats.drafted) : null,
          acceptance_rate: r.stats?.acceptanceRate ?? null,
          mean_accepted: r.stats?.meanAccepted ?? null,
          same_output: r.tokenIds.join() === plainIds,
        },
  );
  for (const r of rows) r.pipeline?.dispose();
  return { model: name, backend: rows[0].pipeline.backend.name, prompt_tokens: ids.length, gen_tokens: genTokens, k, reps, rows: out };
}

function table(b) {
  const head = ['draft', 'decode tok/s', 'speed-up', 'acceptance', 'mean accepted', 'by position', 'same output'];
  const lines = b.rows.map((r) =>
    r.error
      ? [r.draft, `n/a: ${r.error.slice(0, 60)}`, '', '', '', '', '']
      : [
          r.draft,
          r.decode_tok_s.toFixed(1),
          `${r.speedup.toFixed(2)}x`,
          r.acceptance === null ? '-' : `${(100 * r.acceptance).toFixed(0)}%`,
          r.mean_accepted === null ? '-' : r.mean_accepted.toFixed(2),
          r.acceptance_rate ? r.acceptance_rate.map((a) => a.toFixed(2)).join(' ') : '-',
          r.same_output ? 'yes' : 'NO',
        ],
  );
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (l) => `| ${l.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [
    `${b.model} on ${b.backend}, ${b.prompt_tokens}-token prompt, ${b.gen_tokens} greedy tokens, k = ${b.k}, median of ${b.reps}`,
    fmt(head),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...lines.map(fmt),
  ].join('\n');
}

const results = [];
if (only.includes('fixture')) {
  const drafts = [
    ['self-int8', 'self-int8'],
    ['self-int4', 'self-int4'],
    ['tiny-brown-draft (2 layers)', DRAFT],
    ['prompt lookup', 'prompt-lookup'],
  ];
  results.push(await benchModel('tiny-brown (fixture)', FIXTURE, drafts, 'The jury said that the city of Atlanta'));
}
if (only.includes('tinyllama')) {
  const drafts = [
    ['self-int8', 'self-int8'],
    ['self-int4', 'self-int4'],
    ['prompt lookup', 'prompt-lookup'],
  ];
  const prompt = 'The river ran slowly past the old mill, where the miller and his daughter had lived for many years.';
  results.push(await benchModel(`TinyLlama-shaped random, ${tinyLayers} layers`, tinyLlamaDir(), drafts, prompt));
}
if (json) process.stdout.write(`${JSON.stringify({ bench: 'speculative', threads, results }, null, 2)}\n`);
else for (const b of results) console.log(`\n${table(b)}`);
