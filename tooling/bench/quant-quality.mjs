// Quality of lithe's block formats against the float model: perplexity on held-out text and
// greedy agreement, for int8 (q8_0) and int4 (q4_0) linear weights (lithe quantize), and for the
// GGUF Q8_0 / Q4_0 files lithe's converter writes (embedding and lm_head quantized too).
//
//   node tooling/bench/quant-quality.mjs [--model tooling/fixtures/models/tiny-brown]
//        [--text tooling/fixtures/data/brown-heldout.txt] [--context 512] [--prompts 8]
//        [--tokens 32] [--json]
//
// Requires a built @lithe/core (pnpm build).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { convertToGGUF, createPipeline, hfWeightSource, loadHFDir, memoryByteSource, planQuantizedModel, withRecordedFormats } from '@lithe/core';
import { nodeModelFiles } from '@lithe/core/node';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: path.join(root, 'tooling/fixtures/models/tiny-brown') },
    text: { type: 'string', default: path.join(root, 'tooling/fixtures/data/brown-heldout.txt') },
    context: { type: 'string', default: '512' },
    prompts: { type: 'string', default: '8' },
    tokens: { type: 'string', default: '32' },
    json: { type: 'boolean', default: false },
  },
});
const log = (...m) => console.error('[quality]', ...m);
const text = readFileSync(args.text, 'utf8');
const nPrompts = Number(args.prompts);
const nTokens = Number(args.tokens);

const concat = (chunks) => {
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) (out.set(c, o), (o += c.length));
  return out;
};

/** The model directory with its safetensors replaced by a lithe-quantized one, in memory. */
async function quantizedFiles(format) {
  const files = nodeModelFiles(args.model);
  const dir = await loadHFDir(files);
  const plan = planQuantizedModel({ config: dir.config, weights: withRecordedFormats(dir, hfWeightSource(dir)) }, format);
  const chunks = [];
  await plan.write((c) => void chunks.push(c.slice()));
  await dir.close();
  const st = concat(chunks);
  const config = JSON.stringify(plan.config);
  return {
    location: `${args.model} (${format})`,
    has: async (n) => n === 'model.safetensors' || (n !== 'model.safetensors.index.json' && files.has(n)),
    readText: async (n) => (n === 'config.json' ? config : files.readText(n)),
    open: async (n) => (n === 'model.safetensors' ? memoryByteSource(n, st) : files.open(n)),
  };
}

async function ggufSource(type) {
  const dir = await loadHFDir(nodeModelFiles(args.model));
  const chunks = [];
  await convertToGGUF({ config: dir.config, weights: withRecordedFormats(dir, hfWeightSource(dir)), tokenizerJson: dir.tokenizerJson, tokenizerConfig: dir.tokenizerConfig }, type, (c) => void chunks.push(c.slice()));
  await dir.close();
  return memoryByteSource(`${path.basename(args.model)}-${type}.gguf`, concat(chunks));
}

// Prompts: the first words of held-out paragraphs.
const prompts = text.split('\n').filter((l) => l.split(' ').length > 12).slice(0, nPrompts).map((l) => l.split(' ').slice(0, 8).join(' '));

async function measure(name, model) {
  const t0 = performance.now();
  const p = await createPipeline({ model, cacheSize: Math.max(Number(args.context), 64) });
  const ppl = await p.perplexity(text, { context: Number(args.context) });
  const greedy = [];
  for (const prompt of prompts) greedy.push((await p.generate(prompt, { temperature: 0, maxTokens: nTokens, stopOnEos: false }).result).tokenIds);
  const weightBytes = p.model.weightBytes;
  p.dispose();
  log(`${name}: perplexity ${ppl.perplexity.toFixed(3)} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  return { name, perplexity: ppl.perplexity, tokens: ppl.tokens, weightBytes, greedy };
}

const variants = [
  ['f32', args.model],
  ['int8 (q8_0 linear)', await quantizedFiles('q8_0')],
  ['int4 (q4_0 linear)', await quantizedFiles('q4_0')],
  ['GGUF Q8_0', await ggufSource('q8_0')],
  ['GGUF Q4_0', await ggufSource('q4_0')],
];
const results = [];
for (const [name, model] of variants) results.push(await measure(name, model));
const base = results[0];
const rows = results.map((r) => {
  let same = 0;
  let prefix = 0;
  r.greedy.forEach((ids, i) => {
    ids.forEach((id, j) => (same += id === base.greedy[i][j] ? 1 : 0));
    let k = 0;
    while (k < ids.length && ids[k] === base.greedy[i][k]) k++;
    prefix += k;
  });
  const total = nPrompts * nTokens;
  return {
    variant: r.name,
    weight_bytes: r.weightBytes,
    perplexity: r.perplexity,
    perplexity_delta_pct: (100 * (r.perplexity - base.perplexity)) / base.perplexity,
    greedy_token_agreement: same / total,
    greedy_prefix_agreement: prefix / total,
  };
});
if (args.json) console.log(JSON.stringify({ model: args.model, text: args.text, context: Number(args.context), tokens_scored: base.tokens, prompts: nPrompts, tokens_per_prompt: nTokens, results: rows }, null, 2));
else {
  console.log(`${args.model}: perplexity on ${path.basename(args.text)} (context ${args.context}), greedy agreement with f32 over ${nPrompts} prompts x ${nTokens} tokens`);
  console.log('variant               weights      perplexity   delta    same tokens  same prefix');
  for (const r of rows) {
    console.log(`${r.variant.padEnd(20)} ${(r.weight_bytes / 1e6).toFixed(2).padStart(8)} MB  ${r.perplexity.toFixed(3).padStart(10)}  ${r.perplexity_delta_pct.toFixed(2).padStart(6)}%  ${(100 * r.greedy_token_agreement).toFixed(1).padStart(10)}%  ${(100 * r.greedy_prefix_agreement).toFixed(1).padStart(10)}%`);
  }
}
