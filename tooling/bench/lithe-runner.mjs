// lithe's side of llama-cpp.mjs, in its own process so that it can run under another Node
// (`llama-cpp.mjs --node <path>`). Reads one JSON command per line on stdin and answers one JSON
// line on stdout:
//   {"cmd":"load","file","backend","threads","cacheSize"}  -> {"kernels","node","weight_bytes"}
//   {"cmd":"prompt","text","n"}                            -> {"ids"}
//   {"cmd":"generate","ids","n"}                           -> {"tokens","ttft_ms","prefill_tok_s","decode_tok_s"}
//   {"cmd":"rows","ids","rows":[1,2,...],"reps"}           -> {"ms":{"1":...}} (median forward time per row count)
//   {"cmd":"close"}
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { createPipeline } from '@lithe/core';

let pipeline = null;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const commands = {
  async load({ file, backend, threads, cacheSize }) {
    pipeline = await createPipeline({ model: file, backend, threads, cacheSize });
    return { kernels: pipeline.backend.simd ?? null, backend: pipeline.backend.name, node: process.version, weight_bytes: pipeline.model.weightBytes };
  },
  prompt({ text, n }) {
    const words = pipeline.tokenizer.encode(text, { addSpecialTokens: false });
    const ids = pipeline.tokenizer.bosTokenId === null ? [] : [pipeline.tokenizer.bosTokenId];
    for (let i = 0; ids.length < n; i++) ids.push(words[i % words.length]);
    return { ids: ids.slice(0, n) };
  },
  async generate({ ids, n }) {
    const r = await pipeline.generate(ids, { temperature: 0, maxTokens: n, stopOnEos: false }).result;
    const t = r.timings;
    return { tokens: r.tokenIds, ttft_ms: t.ttftMs, prefill_tok_s: t.prefillTokensPerSecond, decode_tok_s: t.decodeTokensPerSecond };
  },
  /**
   * One model forward over R new rows after the prompt (logits for every row, as verifying R − 1
   * drafted tokens needs), the cache truncated back after each; row counts alternate within a rep.
   */
  async rows({ ids, rows, reps }) {
    const max = Math.max(...rows);
    const cache = pipeline.createCache(ids.length + max + 1);
    try {
      pipeline.model.forward(Int32Array.from(ids), cache);
      const next = Int32Array.from({ length: max }, (_, i) => ids[(i + 1) % ids.length]);
      const times = Object.fromEntries(rows.map((r) => [r, []]));
      // Warm-up: every row count once (activation buffers, scratch).
      for (const r of rows) {
        pipeline.model.forward(next.subarray(0, r), cache, { logits: 'all' });
        cache.truncate(ids.length);
      }
      for (let rep = 0; rep < reps; rep++) {
        for (const r of rep % 2 ? [...rows].reverse() : rows) {
          const t0 = performance.now();
          pipeline.model.forward(next.subarray(0, r), cache, { logits: 'all' });
          await pipeline.backend.sync();
          times[r].push(performance.now() - t0);
          cache.truncate(ids.length);
        }
      }
      return { ms: Object.fromEntries(rows.map((r) => [r, median(times[r])])) };
    } finally {
      cache.dispose();
    }
  },
  close() {
    pipeline?.dispose();
    pipeline = null;
    return {};
  },
};

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const msg = JSON.parse(line);
  try {
    const result = await commands[msg.cmd](msg);
    process.stdout.write(`${JSON.stringify({ ok: true, result })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: err instanceof Error ? err.stack : String(err) })}\n`);
  }
  if (msg.cmd === 'close') break;
}
rl.close();
