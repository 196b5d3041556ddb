// The cost of yielding to the event loop between decode steps (what lets an AbortSignal fired by a
// timer stop a generation within one step): the time one yield takes against one decode step,
// measured in alternating rounds on the same pipeline. Target: < 1% of a step.
//
//   node tooling/fixtures/make-random-model.mjs --out /tmp/lithe-small --preset small --dtype f16
//   pnpm --filter @lithe/core build
//   node tooling/bench/decode-yield.mjs [--model /tmp/lithe-small] [--backend wasm] [--threads 2]
//        [--tokens 32] [--rounds 5] [--json]
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createPipeline, yieldToEventLoop } from '@lithe/core';

const { values: opts } = parseArgs({
  options: {
    model: { type: 'string', default: '/tmp/lithe-small' },
    backend: { type: 'string', default: 'wasm' },
    threads: { type: 'string', default: '2' },
    tokens: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
  },
});
const tokens = Number(opts.tokens);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const pipeline = await createPipeline({ model: opts.model, backend: opts.backend, threads: Number(opts.threads), cacheSize: tokens + 64 });
const steps = [];
pipeline.on('step', ({ ms }) => steps.push(ms));

const stepMs = [];
const yieldUs = [];
for (let round = 0; round < Number(opts.rounds); round++) {
  steps.length = 0;
  await pipeline.generate('The river ran slowly past the old mill', { temperature: 0, maxTokens: tokens, stopOnEos: false }).result;
  stepMs.push(median(steps));
  const n = 2000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await yieldToEventLoop();
  yieldUs.push(((performance.now() - t0) * 1000) / n);
}
pipeline.dispose();

const report = {
  model: opts.model,
  backend: pipeline.backendDescription,
  step_ms: median(stepMs),
  yield_us: median(yieldUs),
  overhead_percent: (median(yieldUs) / (median(stepMs) * 1000)) * 100,
  rounds: stepMs.length,
};
if (opts.json) console.log(JSON.stringify(report));
else {
  console.log(`| backend | decode step (median) | one yield (median) | overhead |`);
  console.log(`|---|---|---|---|`);
  console.log(`| ${report.backend} | ${report.step_ms.toFixed(2)} ms | ${report.yield_us.toFixed(1)} µs | ${report.overhead_percent.toFixed(3)} % |`);
}
