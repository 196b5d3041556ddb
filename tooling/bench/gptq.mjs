// GPTQ against round-to-nearest (same bits, groups and layout), on one model: perplexity on
// held-out text after calibrating on different text, bytes per parameter, quantization time,
// decode speed. A script, not a test.
//
//   pnpm turbo run build --filter @lithe/gptq... && node tooling/bench/gptq.mjs
//        [--model tooling/fixtures/models/tiny-brown] [--calibration tooling/fixtures/data/brown-calibration.txt]
//        [--text tooling/fixtures/data/brown-heldout.txt] [--samples 32] [--seq-len 256]
//        [--context 256] [--max-tokens N] [--decode 32] [--rows 8:32,8:128,4:32,4:128,3:32,3:128]
//        [--backend cpu|wasm|webgpu] [--json] [--save out.json]
//
// Rows: for each bits:group, rtn (plain round-to-nearest), gptq, and gptq with act-order, all
// asymmetric, all written as AutoGPTQ checkpoints and loaded back with gptq(). The seven linears
// of every block are quantized; embeddings, norms and the (tied) lm_head stay f32.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { createPipeline } from '@lithe/core';
import { gptq } from '@lithe/gptq';
import { quantizeModelDir } from '@lithe/gptq/node';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: join(root, 'tooling/fixtures/models/tiny-brown') },
    calibration: { type: 'string', default: join(root, 'tooling/fixtures/data/brown-calibration.txt') },
    text: { type: 'string', default: join(root, 'tooling/fixtures/data/brown-heldout.txt') },
    samples: { type: 'string', default: '32' },
    'seq-len': { type: 'string', default: '256' },
    context: { type: 'string', default: '256' },
    'max-tokens': { type: 'string' },
    decode: { type: 'string', default: '32' },
    rows: { type: 'string', default: '8:32,8:128,4:32,4:128,3:32,3:128' },
    backend: { type: 'string', default: 'cpu' },
    json: { type: 'boolean', default: false },
    save: { type: 'string' },
  },
});

const PROMPT = 'The jury said that the city';
const context = Number(args.context);
const calibrationText = readFileSync(args.calibration, 'utf8');
let text = readFileSync(args.text, 'utf8');
const work = mkdtempSync(join(tmpdir(), 'lithe-bench-gptq-'));

async function measure(dir, plugins) {
  const p = await createPipeline({ model: dir, plugins, backend: args.backend, cacheSize: Math.max(context, 128) });
  if (args['max-tokens']) text = p.tokenizer.decode(p.encode(text).slice(1, Number(args['max-tokens'])));
  const ppl = await p.perplexity(text, { context });
  const gen = () => p.generate(PROMPT, { temperature: 0, maxTokens: Number(args.decode), stopOnEos: false }).result;
  await gen();
  const speeds = [];
  for (let i = 0; i < 3; i++) speeds.push((await gen()).timings.decodeTokensPerSecond);
  const weightBytes = p.model.weightBytes;
  p.dispose();
  return { perplexity: ppl.perplexity, tokens: ppl.tokens, weightBytes, decodeTokensPerSecond: speeds.sort((a, b) => a - b)[1] };
}

const results = [];
const log = (s) => !args.json && process.stderr.write(`${s}\n`);
try {
  log('f32 ...');
  results.push({ row: 'f32', method: 'f32', bits: 32, groupSize: null, actOrder: false, bytesPerParameter: 4, quantizeSeconds: 0, ...(await measure(args.model, [])) });
  for (const spec of args.rows.split(',')) {
    const [bits, groupSize] = spec.split(':').map(Number);
    for (const [method, actOrder] of [['rtn', false], ['gptq', false], ['gptq', true]]) {
      const name = `${method}${actOrder ? '+act' : ''} ${bits}b g${groupSize}`;
      log(`${name} ...`);
      const out = join(work, name.replace(/\W+/g, '-'));
      const t0 = performance.now();
      const r = await quantizeModelDir(args.model, out, { method, bits, groupSize, actOrder, calibrationText, samples: Number(args.samples), seqLen: Number(args['seq-len']) });
      const quantizeSeconds = (performance.now() - t0) / 1000;
      results.push({ row: name, method, bits, groupSize, actOrder, bytesPerParameter: r.bitsPerParameter / 8, quantizeSeconds, gptqLoss: r.loss, ...(await measure(out, [gptq({ groupSize })])) });
      rmSync(out, { recursive: true, force: true });
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const base = results[0].perplexity;
for (const r of results) r.perplexityDeltaPct = (r.perplexity / base - 1) * 100;
const meta = { backend: args.backend, model: args.model, calibration: args.calibration, samples: Number(args.samples), seqLen: Number(args['seq-len']), text: args.text, context, scoredTokens: results[0].tokens, node: process.version };
if (args.save) writeFileSync(args.save, JSON.stringify({ meta, results }, null, 2));
if (args.json) console.log(JSON.stringify({ meta, results }, null, 2));
else {
  console.log(`\n${meta.model} on ${meta.backend}: calibration ${meta.samples} x ${meta.seqLen} tokens of ${meta.calibration}; perplexity on ${meta.scoredTokens} tokens of ${meta.text}, context ${context}\n`);
  const rows = [['row', 'perplexity', 'Δ vs f32', 'bytes/param (linears)', 'quantize s', 'decode tok/s', 'beats rtn']];
  const rtn = new Map(results.filter((r) => r.method === 'rtn').map((r) => [`${r.bits}:${r.groupSize}`, r.perplexity]));
  for (const r of results) {
    const ref = rtn.get(`${r.bits}:${r.groupSize}`);
    rows.push([r.row, r.perplexity.toFixed(3), `${r.perplexityDeltaPct >= 0 ? '+' : ''}${r.perplexityDeltaPct.toFixed(2)}%`, r.bytesPerParameter.toFixed(3), r.quantizeSeconds.toFixed(1), r.decodeTokensPerSecond.toFixed(1), r.method === 'gptq' ? (r.perplexity < ref ? 'yes' : 'NO') : '']);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const [i, r] of rows.entries()) {
    console.log(r.map((c, j) => (j === 0 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}
