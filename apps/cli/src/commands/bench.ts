import { basename, resolve } from 'node:path';
import { Command } from 'commander';
import { parameterCount, WasmBackend, type Pipeline } from '@lithe/core';
import { parseStreamingFlags } from '@lithe/streaming';
import { formatBytes, formatCount, formatNumber, formatTable, printJson } from '../format.js';
import { loadModel } from '../load-model.js';
import { addLoadOptions, addSpeculativeOptions, backendJson, cacheSizeFor, integerAtLeast, speculationSummary, speculativeJson, type LoadFlags } from '../options.js';

interface Flags extends LoadFlags {
  promptTokens: number;
  genTokens: number;
  warmup: number;
  batch: number;
  json?: boolean;
}

// Ordinary English, so the prompt's tokens are the kind a real prompt has.
const PARAGRAPH =
  'The river ran slowly past the old mill, where the miller and his daughter had lived for many years. ' +
  'Every morning they opened the wooden doors, swept the floor, and waited for the farmers to bring their grain. ' +
  'In the evenings the village gathered by the water to talk about the weather, the harvest, and the news from the city.';

const WARMUP_TOKENS = 4;

export function benchCommand(): Command {
  const cmd = new Command('bench').description('measure prefill and decode speed and memory with a fixed-length prompt, greedy');
  addLoadOptions(cmd);
  addSpeculativeOptions(cmd);
  return cmd
    .option('--prompt-tokens <n>', 'prompt length in tokens, BOS included', integerAtLeast('--prompt-tokens', 1), 128)
    .option('--gen-tokens <n>', 'tokens to generate (EOS does not stop the run)', integerAtLeast('--gen-tokens', 1), 64)
    .option('--warmup <n>', `untimed runs of ${WARMUP_TOKENS} tokens first`, integerAtLeast('--warmup', 0), 1)
    .option('--batch <n>', 'sequences decoded together, one batched forward per step (each with its own KV cache)', integerAtLeast('--batch', 1), 1)
    .option('--json', 'print one JSON object')
    .action(run);
}

/** Exactly `n` prompt ids: BOS (when the model has one), then the paragraph's tokens, repeated. */
export function benchPrompt(pipeline: Pipeline, n: number): number[] {
  const words = pipeline.tokenizer.encode(PARAGRAPH, { addSpecialTokens: false });
  const bos = pipeline.tokenizer.bosTokenId;
  const ids = bos === null ? [] : [bos];
  for (let i = 0; ids.length < n; i++) ids.push(words[i % words.length]);
  return ids.slice(0, n);
}

async function run(flags: Flags): Promise<void> {
  // With --window the cache rolls: it has its own size, whatever the run's length.
  const stream = parseStreamingFlags(flags);
  const needed = flags.promptTokens + flags.genTokens;
  const pipeline = await loadModel(
    flags,
    stream
      ? {}
      : {
          cacheSize: cacheSizeFor(flags, needed, 'the prompt and generated tokens'),
          cacheSizeFrom: flags.cacheSize === undefined ? `--prompt-tokens + --gen-tokens` : '--cache-size',
        },
  );
  try {
    const prompt = benchPrompt(pipeline, flags.promptTokens);
    const greedy = { temperature: 0, stopOnEos: false };
    const prompts = Array.from({ length: flags.batch }, () => prompt);
    const together = (maxTokens: number) => Promise.all(pipeline.generateBatch(prompts, { ...greedy, maxTokens }).map((g) => g.result));
    for (let i = 0; i < flags.warmup; i++) await together(Math.min(WARMUP_TOKENS, flags.genTokens));
    const results = await together(flags.genTokens);
    const r = results[0];
    // The sequences prefill in one batched forward and then decode in lockstep: the aggregate rate
    // is every decoded token over the longest decode, the per-sequence rate what each one saw.
    const decoded = results.reduce((s, x) => s + Math.max(0, x.completionTokens - 1), 0);
    const decodeMs = Math.max(...results.map((x) => x.timings.decodeMs));
    const perSequence = results.reduce((s, x) => s + x.timings.decodeTokensPerSecond, 0) / results.length;
    const ttftMs = Math.max(...results.map((x) => x.timings.ttftMs));

    const c = pipeline.config;
    const weightBytes = pipeline.model.weightBytes;
    // The idle cache stays allocated after the run; its bytes are the KV cache's size.
    const kvBytes = pipeline.backend.memory.snapshot().current.kv;
    const kvBytesPerSequence = kvBytes / flags.batch;
    // Decode step j (1..gen-1) reads the keys and values of prompt + j tokens: on average prompt + gen/2,
    // at the cache's own bytes per token (quantized caches included).
    // A rolling cache reads at most its sinks + window slots (not its rollback slots).
    const slots = stream ? stream.sinks + stream.window : 0;
    const kvReadPerToken = stream
      ? ((kvBytesPerSequence * slots) / (slots + stream.rollback)) * Math.min(1, (flags.promptTokens + flags.genTokens / 2) / slots)
      : (kvBytesPerSequence / pipeline.cacheSize) * (flags.promptTokens + flags.genTokens / 2);
    const report = {
      model: basename(resolve(flags.model)),
      model_type: c.modelType,
      ...backendJson(pipeline),
      // The wasm backend's build of its kernels: 'relaxed-simd' or 'simd128'.
      kernels: pipeline.backend instanceof WasmBackend ? pipeline.backend.simd : null,
      // The linear weights' format (what most bytes are); embeddings stay float in quantized models.
      dtype: pipeline.model.layers[0]?.gate.dtype ?? pipeline.model.embed.dtype,
      kv_cache: flags.kvQuant ?? flags.kvDtype ?? 'f16',
      // Which attention kernels ran: core's, or @lithe/flash-attn's (--flash-attn).
      attention: flags.flashAttn ? 'flash' : 'core',
      streaming: stream,
      params: parameterCount(c),
      prompt_tokens: r.promptTokens,
      gen_tokens: r.completionTokens,
      batch: flags.batch,
      ttft_ms: ttftMs,
      prefill_tok_s: (flags.batch * r.promptTokens) / (ttftMs / 1000),
      decode_tok_s: decoded / (decodeMs / 1000),
      decode_tok_s_per_sequence: perSequence,
      weight_bytes: weightBytes,
      kv_bytes: kvBytes,
      peak_memory_bytes: Math.max(...results.map((x) => x.peakMemoryBytes)),
      // Each step reads the weights once for the whole batch, and every sequence's own keys and values.
      achieved_gb_s: (weightBytes * perSequence + kvReadPerToken * (decoded / (decodeMs / 1000))) / 1e9,
      ...speculativeJson(r.stats),
    };
    if (flags.json) return printJson(report);
    console.log(
      formatTable([
        ['model', `${report.model} (${report.model_type}, ${formatCount(report.params)} params)`],
        ['backend', `${report.backend}${report.kernels ? ` (${report.kernels} kernels)` : ''}, weights ${report.dtype}`],
        ['prompt', `${report.prompt_tokens} tokens`],
        ['generated', `${report.gen_tokens} tokens (greedy)${flags.batch > 1 ? ` per sequence, ${flags.batch} sequences in a batch` : ''}`],
        ['time to first token', `${formatNumber(report.ttft_ms, 1)} ms`],
        ['prefill', `${formatNumber(report.prefill_tok_s, 1)} tok/s`],
        ['decode', `${formatNumber(report.decode_tok_s, 2)} tok/s${flags.batch > 1 ? ` aggregate, ${formatNumber(report.decode_tok_s_per_sequence, 2)} tok/s per sequence` : ''}`],
        ['weights', formatBytes(report.weight_bytes)],
        ['KV cache', `${formatBytes(report.kv_bytes)} (${report.kv_cache}, ${stream ? `${stream.sinks} sinks + ${stream.window} window, rolling` : `${pipeline.cacheSize} tokens`}${flags.batch > 1 ? ` x ${flags.batch} sequences` : ''})`],
        ['peak memory', formatBytes(report.peak_memory_bytes)],
        ['achieved bandwidth', `${formatNumber(report.achieved_gb_s, 2)} GB/s (weights + KV read per decoded token)`],
        ...(r.stats?.speculative ? [['speculation', speculationSummary(r.stats).slice(2)] as [string, string]] : []),
      ]),
    );
  } finally {
    pipeline.dispose();
  }
}
