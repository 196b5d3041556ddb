// AWQ against round-to-nearest (same quantizer: 4 bits, zero point, same group size, same AutoAWQ
// layout) and GPTQ (4 bits, asymmetric, same group size), on one model: perplexity on held-out
// text after calibrating on different text, the α the search chose per block, bytes per
// parameter, quantization time; and AWQ weights with kv-quant's int8 KV cache together
// (lmdeploy's pairing). A script, not a test.
//
//   pnpm turbo run build --filter @lithe/bench... && node tooling/bench/awq.mjs
//        [--model tooling/fixtures/models/tiny-brown] [--calibration tooling/fixtures/data/brown-calibration.txt]
//        [--text heldout-docs|FILE] [--samples 32] [--seq-len 256] [--search-samples 4] [--duo] [--no-clip]
//        [--context 256] [--max-tokens N] [--groups 32,64,128] [--no-gptq] [--backend wasm|cpu] [--json] [--save out.json]
//
// The seven linears of every block are quantized; embeddings, the final norm and the (tied)
// lm_head stay f32. Every quantized model is written as a checkpoint and loaded back.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { createPipeline } from '@lithe/core';
import { awq } from '@lithe/awq';
import { quantizeModelDir as quantizeAwqDir } from '@lithe/awq/node';
import { gptq } from '@lithe/gptq';
import { quantizeModelDir as quantizeGptqDir } from '@lithe/gptq/node';
import { kvQuant } from '@lithe/kv-quant';
import { HELDOUT_FRACTION, loadDocuments } from '../fixtures/prepare-corpus.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: join(root, 'tooling/fixtures/models/tiny-brown') },
    calibration: { type: 'string', default: join(root, 'tooling/fixtures/data/brown-calibration.txt') },
    // 'heldout-docs': every held-out Brown document whole (~29k tokens; brown-heldout.txt is the
    // first 4.5k of them), so that perplexity differences of a few tenths of a percent are measurable.
    text: { type: 'string', default: 'heldout-docs' },
    samples: { type: 'string', default: '32' },
    'seq-len': { type: 'string', default: '256' },
    // The scale search scores each α by the block's output on this many of the windows (the
    // statistics use them all): 20 block forwards per group, so it sets the quantization time.
    'search-samples': { type: 'string', default: '4' },
    duo: { type: 'boolean', default: false },
    'no-clip': { type: 'boolean', default: false },
    context: { type: 'string', default: '256' },
    'max-tokens': { type: 'string' },
    groups: { type: 'string', default: '32,64,128' },
    'no-gptq': { type: 'boolean', default: false },
    // Scoring ~29k tokens over a 32000-word vocabulary runs the lm_head for every token: wasm's
    // SIMD kernels, not the TypeScript reference.
    backend: { type: 'string', default: 'wasm' },
    json: { type: 'boolean', default: false },
    save: { type: 'string' },
  },
});

const context = Number(args.context);
const calibrationText = readFileSync(args.calibration, 'utf8');
let text = args.text === 'heldout-docs' ? heldoutDocuments() : readFileSync(args.text, 'utf8');
const work = mkdtempSync(join(tmpdir(), 'lithe-bench-awq-'));
const calib = { calibrationText, samples: Number(args.samples), seqLen: Number(args['seq-len']) };

/** The Brown documents tiny-brown never trained on (prepare-corpus.mjs's split), whole. */
function heldoutDocuments() {
  const docs = loadDocuments();
  return `${docs.slice(docs.length - Math.max(1, Math.round(docs.length * HELDOUT_FRACTION))).map((d) => d.paragraphs.join('\n')).join('\n\n')}\n`;
}

/** Log-softmax of one logits row, in f64, into out. */
function logSoftmax(row, out) {
  let max = -Infinity;
  for (let k = 0; k < row.length; k++) if (row[k] > max) max = row[k];
  let sum = 0;
  for (let k = 0; k < row.length; k++) sum += Math.exp(row[k] - max);
  const lse = max + Math.log(sum);
  for (let k = 0; k < row.length; k++) out[k] = row[k] - lse;
  return out;
}

/**
 * Mean KL(f32 ‖ quantized) per token of the held-out text, windows of `context` tokens: how far
 * the next-token distributions moved, a far less noisy measure than a perplexity difference on a
 * few thousand tokens. Also each window's summed negative log-likelihood of the text's next
 * tokens, for the paired comparison of two quantized models (`pairedNll`).
 */
async function divergence(p, ref) {
  const ids = ref.encode(text);
  const V = ref.model.config.vocabSize;
  let kl = 0;
  let n = 0;
  const windowNll = [];
  const windowTokens = [];
  const [la, lb] = [new Float64Array(V), new Float64Array(V)];
  for (let s = 0; s < ids.length - 1; s += context) {
    const w = Int32Array.from(ids.slice(s, s + context));
    const rows = [];
    for (const q of [ref, p]) {
      const cache = q.createCache(context);
      rows.push(((await q.backend.read(q.model.forward(w, cache, { logits: 'all' }))) ).slice());
      cache.dispose();
    }
    let nll = 0;
    for (let t = 0; t < w.length; t++) {
      const a = logSoftmax(rows[0].subarray(t * V, (t + 1) * V), la);
      const b = logSoftmax(rows[1].subarray(t * V, (t + 1) * V), lb);
      for (let k = 0; k < V; k++) kl += Math.exp(a[k]) * (a[k] - b[k]);
      if (t + 1 < w.length) nll -= b[w[t + 1]];
      n++;
    }
    windowNll.push(nll);
    windowTokens.push(w.length - 1);
  }
  return { kl: kl / n, windowNll, windowTokens };
}

/**
 * Mean per-token NLL of model a minus model b on the same tokens, and its standard error with the
 * windows as independent units (tokens inside a window are not): a difference within ±2σ is noise.
 */
function pairedNll(a, b) {
  const N = a.windowTokens.reduce((x, y) => x + y, 0);
  const W = a.windowNll.length;
  const d = a.windowNll.map((v, i) => v - b.windowNll[i]);
  const mean = d.reduce((x, y) => x + y, 0) / N;
  const ss = d.reduce((acc, v, i) => acc + (v - mean * a.windowTokens[i]) ** 2, 0);
  return { mean, se: Math.sqrt((ss * W) / (W - 1)) / N };
}

let reference = null;
async function measure(dir, plugins) {
  const p = await createPipeline({ model: dir, plugins, backend: args.backend, cacheSize: Math.max(context, 128) });
  if (args['max-tokens']) text = p.tokenizer.decode(p.encode(text).slice(1, Number(args['max-tokens'])));
  const ppl = await p.perplexity(text, { context });
  const weightBytes = p.model.weightBytes;
  if (!reference) {
    reference = p;
    return { perplexity: ppl.perplexity, tokens: ppl.tokens, weightBytes, klVsF32: 0 };
  }
  const { kl: klVsF32, windowNll, windowTokens } = await divergence(p, reference);
  p.dispose();
  return { perplexity: ppl.perplexity, tokens: ppl.tokens, weightBytes, klVsF32, windows: { windowNll, windowTokens } };
}

const results = [];
const log = (s) => !args.json && process.stderr.write(`${s}\n`);
const alphaText = (blocks) => blocks.map((b) => ['qkv', 'o', 'gateUp', 'down'].map((g) => (b.alpha[g] === null ? '-' : b.alpha[g].toFixed(2))).join('/')).join(' ');
try {
  log('f32 ...');
  results.push({ row: 'f32', method: 'f32', groupSize: null, bytesPerParameter: 4, quantizeSeconds: 0, ...(await measure(args.model, [])) });
  for (const groupSize of args.groups.split(',').map(Number)) {
    const rows = [['rtn', quantizeAwqDir], ['awq', quantizeAwqDir], ...(args['no-gptq'] ? [] : [['gptq', quantizeGptqDir]])];
    for (const [method, quantize] of rows) {
      const name = `${method} g${groupSize}`;
      log(`${name} ...`);
      const out = join(work, name.replace(/\W+/g, '-'));
      const t0 = performance.now();
      const r = await quantize(args.model, out, method === 'gptq' ? { method, bits: 4, groupSize, ...calib } : { method, groupSize, searchSamples: Number(args['search-samples']), duoScaling: method === 'awq' && args.duo, clip: !args['no-clip'], ...calib });
      const quantizeSeconds = (performance.now() - t0) / 1000;
      const plugin = method === 'gptq' ? gptq({ groupSize }) : awq({ groupSize });
      const row = { row: name, method, groupSize, bytesPerParameter: r.bitsPerParameter / 8, quantizeSeconds, alpha: method === 'awq' ? r.blocks.map((b) => b.alpha) : null, ...(await measure(out, [plugin])) };
      results.push(row);
      if (method === 'awq') {
        log(`${name} + kv int8 ...`);
        results.push({ ...row, row: `${name} + kv int8`, method: 'awq+kv8', ...(await measure(out, [plugin, kvQuant({ bits: 8 })])) });
      }
      rmSync(out, { recursive: true, force: true });
    }
  }
} finally {
  reference?.dispose();
  rmSync(work, { recursive: true, force: true });
}

const base = results[0].perplexity;
const rtnOf = new Map(results.filter((r) => r.method === 'rtn').map((r) => [r.groupSize, r]));
for (const r of results) {
  r.perplexityDeltaPct = (r.perplexity / base - 1) * 100;
  const rtn = rtnOf.get(r.groupSize);
  // NLL per token against round-to-nearest at the same group size, paired over the same tokens.
  r.nllVsRtn = rtn && r !== rtn ? pairedNll(r.windows, rtn.windows) : null;
}
for (const r of results) delete r.windows;
const meta = { model: args.model, calibration: args.calibration, samples: calib.samples, seqLen: calib.seqLen, searchSamples: Number(args['search-samples']), text: args.text, backend: args.backend, context, scoredTokens: results[0].tokens, node: process.version };
if (args.save) writeFileSync(args.save, JSON.stringify({ meta, results }, null, 2));
if (args.json) console.log(JSON.stringify({ meta, results }, null, 2));
else {
  console.log(`\n${meta.model}: calibration ${meta.samples} x ${meta.seqLen} tokens of ${meta.calibration} (AWQ's scale search on ${meta.searchSamples} of them); perplexity on ${meta.scoredTokens} tokens of ${meta.text}, context ${context}\n`);
  const rows = [['row', 'perplexity', 'Δ vs f32', 'KL vs f32 (1e-3)', 'NLL vs rtn ±2σ (1e-3)', 'bytes/param (linears)', 'quantize s', 'beats rtn (ppl / KL)', 'α per block (qkv/o/gate-up/down)']];
  for (const r of results) {
    const ref = rtnOf.get(r.groupSize);
    const yes = (b) => (b ? 'yes' : 'NO');
    const beats = r.method === 'awq' || r.method === 'gptq' ? `${yes(r.perplexity < ref.perplexity)} / ${yes(r.klVsF32 < ref.klVsF32)}` : '';
    const nll = r.nllVsRtn ? `${r.nllVsRtn.mean >= 0 ? '+' : ''}${(r.nllVsRtn.mean * 1e3).toFixed(3)} ±${(2 * r.nllVsRtn.se * 1e3).toFixed(3)}` : '';
    rows.push([r.row, r.perplexity.toFixed(3), `${r.perplexityDeltaPct >= 0 ? '+' : ''}${r.perplexityDeltaPct.toFixed(2)}%`, (r.klVsF32 * 1e3).toFixed(3), nll, r.bytesPerParameter.toFixed(3), r.quantizeSeconds.toFixed(1), beats, r.method === 'awq' ? alphaText(r.alpha.map((alpha) => ({ alpha }))) : '']);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const [i, r] of rows.entries()) {
    console.log(r.map((c, j) => (j === 0 || j === rows[0].length - 1 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join('  ').trimEnd());
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}
