import { basename, resolve } from 'node:path';
import { Command } from 'commander';
import { parameterCount, type Pipeline } from '@lithe/core';
import { formatBytes, formatCount, formatNumber, formatTable, printJson } from '../format.js';
import { loadModel } from '../load-model.js';
import { addLoadOptions, cacheSizeFor, integerAtLeast, type LoadFlags } from '../options.js';

interface Flags extends LoadFlags {
  promptTokens: number;
  genTokens: number;
  warmup: number;
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
  return cmd
    .option('--prompt-tokens <n>', 'prompt length in tokens, BOS included', integerAtLeast('--prompt-tokens', 1), 128)
    .option('--gen-tokens <n>', 'tokens to generate (EOS does not stop the run)', integerAtLeast('--gen-tokens', 1), 64)
    .option('--warmup <n>', `untimed runs of ${WARMUP_TOKENS} tokens first`, integerAtLeast('--warmup', 0), 1)
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
  const pipeline = await loadModel(flags, { cacheSize: cacheSizeFor(flags, flags.promptTokens + flags.genTokens, 'the prompt and generated tokens') });
  try {
    const prompt = benchPrompt(pipeline, flags.promptTokens);
    const greedy = { temperature: 0, stopOnEos: false };
    for (let i = 0; i < flags.warmup; i++) await pipeline.generate(prompt, { ...greedy, maxTokens: Math.min(WARMUP_TOKENS, flags.genTokens) }).result;
    const r = await pipeline.generate(prompt, { ...greedy, maxTokens: flags.genTokens }).result;

    const c = pipeline.config;
    const weightBytes = pipeline.model.weightBytes;
    // The idle cache stays allocated after the run; its bytes are the KV cache's size.
    const kvBytes = pipeline.backend.memory.snapshot().current.kv;
    // Decode step j (1..gen-1) reads the keys and values of prompt + j tokens: on average prompt + gen/2,
    // at the cache's own bytes per token (quantized caches included).
    const kvReadPerToken = (kvBytes / pipeline.cacheSize) * (flags.promptTokens + flags.genTokens / 2);
    const t = r.timings;
    const report = {
      model: basename(resolve(flags.model)),
      model_type: c.modelType,
      backend: pipeline.backend.name,
      dtype: pipeline.model.embed.dtype,
      kv_cache: flags.kvQuant ?? 'f32',
      params: parameterCount(c),
      prompt_tokens: r.promptTokens,
      gen_tokens: r.completionTokens,
      ttft_ms: t.ttftMs,
      prefill_tok_s: t.prefillTokensPerSecond,
      decode_tok_s: t.decodeTokensPerSecond,
      weight_bytes: weightBytes,
      kv_bytes: kvBytes,
      peak_memory_bytes: r.peakMemoryBytes,
      achieved_gb_s: ((weightBytes + kvReadPerToken) * t.decodeTokensPerSecond) / 1e9,
    };
    if (flags.json) return printJson(report);
    console.log(
      formatTable([
        ['model', `${report.model} (${report.model_type}, ${formatCount(report.params)} params)`],
        ['backend', `${report.backend}, weights ${report.dtype}`],
        ['prompt', `${report.prompt_tokens} tokens`],
        ['generated', `${report.gen_tokens} tokens (greedy)`],
        ['time to first token', `${formatNumber(report.ttft_ms, 1)} ms`],
        ['prefill', `${formatNumber(report.prefill_tok_s, 1)} tok/s`],
        ['decode', `${formatNumber(report.decode_tok_s, 2)} tok/s`],
        ['weights', formatBytes(report.weight_bytes)],
        ['KV cache', `${formatBytes(report.kv_bytes)} (${report.kv_cache}, ${pipeline.cacheSize} tokens)`],
        ['peak memory', formatBytes(report.peak_memory_bytes)],
        ['achieved bandwidth', `${formatNumber(report.achieved_gb_s, 2)} GB/s (weights + KV read per decoded token)`],
      ]),
    );
  } finally {
    pipeline.dispose();
  }
}
