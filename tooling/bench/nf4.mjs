// NF4 / FP4 against full precision and round-to-nearest integer formats, on one model and one
// held-out text: perplexity, bytes of weights, decode speed. A script, not a test.
//
//   pnpm turbo run build --filter @lithe/nf4... && node tooling/bench/nf4.mjs
//        [--model tooling/fixtures/models/tiny-brown] [--text tooling/fixtures/data/brown-heldout.txt]
//        [--context 512] [--max-tokens N] [--decode 64] [--rows f32,nf4,...] [--json] [--save out.json]
//
// The int8 / int4 rows are simple symmetric round-to-nearest with one f32 scale per group of
// 32 or 64 weights (q = round(w / s), s = absmax / 127 or / 7), defined here for comparison,
// with a kernel that dequantizes inside the dot product like the 4-bit one. Which layers are
// quantized is the same for every format: the seven linear layers of each block; embeddings, norms
// and the (here tied) lm_head stay as loaded.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { createPipeline, definePlugin } from '@lithe/core';
import { nf4 } from '@lithe/nf4';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: join(root, 'tooling/fixtures/models/tiny-brown') },
    text: { type: 'string', default: join(root, 'tooling/fixtures/data/brown-heldout.txt') },
    context: { type: 'string', default: '512' },
    'max-tokens': { type: 'string' },
    decode: { type: 'string', default: '64' },
    rows: { type: 'string' },
    json: { type: 'boolean', default: false },
    save: { type: 'string' },
  },
});

// ---------------------------------------------------------------------------------------------
// Round-to-nearest symmetric integer weights (comparison rows)
// ---------------------------------------------------------------------------------------------

class RtnLinear {
  constructor(name, backend, w, shape, bits, group) {
    const [outF, inF] = shape;
    if (inF % group !== 0) throw new Error(`rtn: ${name} has rows of ${inF}, not a multiple of ${group}`);
    Object.assign(this, { name, inFeatures: inF, outFeatures: outF, bits, group });
    const qmax = 2 ** (bits - 1) - 1;
    const n = w.length;
    const scales = new Float32Array(n / group);
    const q = new Int8Array(n);
    for (let g = 0; g < scales.length; g++) {
      let m = 0;
      for (let i = g * group; i < (g + 1) * group; i++) m = Math.max(m, Math.abs(w[i]));
      const s = m / qmax;
      scales[g] = s;
      for (let i = g * group; i < (g + 1) * group; i++) q[i] = s > 0 ? Math.max(-qmax, Math.min(qmax, Math.round(w[i] / s))) : 0;
    }
    let packed;
    if (bits === 8) packed = new Uint8Array(q.buffer);
    else {
      packed = new Uint8Array(n / 2);
      for (let j = 0; j < n / 2; j++) packed[j] = ((q[2 * j] + 8) << 4) | (q[2 * j + 1] + 8);
    }
    this.q = backend.upload(packed, [packed.length], 'u8', 'weights');
    this.s = backend.upload(new Uint8Array(scales.buffer), [scales.length], 'f32', 'weights');
  }

  get bytes() {
    return this.q.byteLength + this.s.byteLength;
  }

  forward(x, out) {
    const { inFeatures: inF, outFeatures: outF, group } = this;
    const xs = x.handle;
    const ys = out.handle;
    const qs = this.q.handle;
    const ss = this.s.handle;
    const rows = x.size / inF;
    const q8 = this.bits === 8 ? new Int8Array(qs.buffer, qs.byteOffset, qs.length) : null;
    for (let t = 0; t < rows; t++) {
      const xo = t * inF;
      for (let o = 0; o < outF; o++) {
        let acc = 0;
        let g = (o * inF) / group;
        for (let i = 0; i < inF; i += group, g++) {
          let s0 = 0, s1 = 0;
          if (q8) {
            const base = o * inF + i;
            for (let k = 0; k < group; k += 2) {
              s0 += xs[xo + i + k] * q8[base + k];
              s1 += xs[xo + i + k + 1] * q8[base + k + 1];
            }
          } else {
            const base = (o * inF + i) >> 1;
            for (let k = 0; k < group; k += 2) {
              const b = qs[base + (k >> 1)];
              s0 += xs[xo + i + k] * ((b >> 4) - 8);
              s1 += xs[xo + i + k + 1] * ((b & 15) - 8);
            }
          }
          acc += ss[g] * (s0 + s1);
        }
        ys[t * outF + o] = acc;
      }
    }
  }

  dispose() {
    this.q.dispose();
    this.s.dispose();
  }
}

const rtn = definePlugin(({ bits, group }) => ({
  name: `rtn-int${bits}`,
  transformWeights(tensor, info, ctx) {
    if (info.role !== 'linear') return tensor;
    const m = new RtnLinear(info.name, ctx.backend, tensor.handle, tensor.shape, bits, group);
    tensor.dispose();
    return m;
  },
}));

// ---------------------------------------------------------------------------------------------

const ROWS = [
  { id: 'f32', label: 'f32', opts: { dtype: 'f32' } },
  { id: 'f16', label: 'f16 (all matrices)', opts: { dtype: 'f16' } },
  { id: 'int8', label: 'int8 RTN g32', opts: { dtype: 'f32', plugins: [rtn({ bits: 8, group: 32 })] } },
  { id: 'int4-g32', label: 'int4 RTN g32', opts: { dtype: 'f32', plugins: [rtn({ bits: 4, group: 32 })] } },
  { id: 'int4-g64', label: 'int4 RTN g64', opts: { dtype: 'f32', plugins: [rtn({ bits: 4, group: 64 })] } },
  { id: 'nf4', label: 'nf4 + double quant', opts: { dtype: 'f32', plugins: [nf4({ type: 'nf4', doubleQuant: true })] } },
  { id: 'nf4-nodq', label: 'nf4', opts: { dtype: 'f32', plugins: [nf4({ type: 'nf4', doubleQuant: false })] } },
  { id: 'fp4', label: 'fp4 + double quant', opts: { dtype: 'f32', plugins: [nf4({ type: 'fp4', doubleQuant: true })] } },
  { id: 'fp4-nodq', label: 'fp4', opts: { dtype: 'f32', plugins: [nf4({ type: 'fp4', doubleQuant: false })] } },
];

const LINEAR = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];
const wanted = args.rows ? new Set(args.rows.split(',')) : null;
const rows = ROWS.filter((r) => !wanted || wanted.has(r.id));
let text = readFileSync(args.text, 'utf8');
const context = Number(args.context);
const PROMPT = 'The jury said that';

/** Median time of `fn` over `n` runs, in ms. */
function timeMs(fn, n) {
  const t = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    fn();
    t.push(performance.now() - s);
  }
  return t.sort((a, b) => a - b)[n >> 1];
}

const results = [];
for (const row of rows) {
  const t0 = performance.now();
  const p = await createPipeline({ model: args.model, cacheSize: Math.max(context, 256), ...row.opts });
  const loadMs = performance.now() - t0;
  if (args['max-tokens'] && results.length === 0) {
    // A shorter run: the first N tokens of the text (decoded back, so every row scores the same text).
    text = p.tokenizer.decode(p.encode(text).slice(1, Number(args['max-tokens'])));
  }
  const mods = p.model.layers.flatMap((l) => LINEAR.map((k) => l[k]));
  const linearParams = mods.reduce((s, m) => s + m.inFeatures * m.outFeatures, 0);
  const linearBytes = mods.reduce((s, m) => s + m.bytes, 0);
  const ppl = await p.perplexity(text, { context });
  // Decode speed: one warm-up, then the median of three greedy runs.
  const gen = () => p.generate(PROMPT, { temperature: 0, maxTokens: Number(args.decode), stopOnEos: false }).result;
  await gen();
  const speeds = [];
  for (let i = 0; i < 3; i++) speeds.push((await gen()).timings.decodeTokensPerSecond);
  // The linear layers alone, one token: what the weight format changes.
  const d = p.config.hiddenSize;
  const buf = (w) => p.backend.allocate([1, w], 'f32', 'activations');
  const io = mods.map((m) => [buf(m.inFeatures), buf(m.outFeatures)]);
  for (const [x] of io) x.handle.fill(0.1);
  const linearMs = timeMs(() => mods.forEach((m, i) => m.forward(io[i][0], io[i][1])), 30);
  results.push({
    id: row.id,
    format: row.label,
    perplexity: ppl.perplexity,
    tokensScored: ppl.tokens,
    weightBytes: p.model.weightBytes,
    linearBytes,
    linearBitsPerParam: (linearBytes * 8) / linearParams,
    decodeTokensPerSecond: speeds.sort((a, b) => a - b)[1],
    linearMsPerToken: linearMs,
    loadMs,
    hidden: d,
  });
  p.dispose();
  if (!args.json) process.stderr.write(`${row.label}: done\n`);
}

const base = results.find((r) => r.id === 'f32');
for (const r of results) r.perplexityDeltaPct = base ? ((r.perplexity / base.perplexity - 1) * 100) : null;

const report = JSON.stringify({ model: args.model, text: args.text, context, results }, null, 2);
if (args.save) writeFileSync(args.save, `${report}\n`);
if (args.json) {
  console.log(report);
} else {
  const head = ['format', 'bits/param (linear)', 'linear bytes', 'weight bytes', 'perplexity', 'Δ ppl', 'decode tok/s', 'linear ms/token'];
  const body = results.map((r) => [
    r.format,
    r.linearBitsPerParam.toFixed(3),
    r.linearBytes.toLocaleString('en-US'),
    r.weightBytes.toLocaleString('en-US'),
    r.perplexity.toFixed(3),
    r.perplexityDeltaPct === null ? '' : `${r.perplexityDeltaPct >= 0 ? '+' : ''}${r.perplexityDeltaPct.toFixed(2)}%`,
    r.decodeTokensPerSecond.toFixed(1),
    r.linearMsPerToken.toFixed(3),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  console.log(`${args.model}, ${results[0]?.tokensScored ?? 0} tokens scored of ${args.text} (context ${context})\n`);
  console.log(line(head));
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const b of body) console.log(line(b));
}
