/**
 * Options shared by several commands, and the parsers that validate numeric values. A bad value
 * throws an error naming the option and the accepted range, e.g. `--top-p must be in (0, 1], got 2`.
 */
import { Option, type Command } from 'commander';
import { BACKEND_CHOICES, type BackendChoice, type GenerateOptions, type LithePlugin, type PipelineOptions, type SamplingOptions } from '@lithe/core';
import { KV_QUANT_FLAG_VALUES, kvQuant, parseKvQuantFlag } from '@lithe/kv-quant';
import { nf4 } from '@lithe/nf4';
import { readModelJson } from './model-json.js';

function toNumber(flag: string, raw: string): number {
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v)) throw new Error(`${flag} must be a number, got '${raw}'`);
  return v;
}

/** A parser for a number that must pass `ok`; `range` describes the accepted values. */
export function numberIn(flag: string, range: string, ok: (v: number) => boolean): (raw: string) => number {
  return (raw) => {
    const v = toNumber(flag, raw);
    if (!ok(v)) throw new Error(`${flag} must be ${range}, got ${raw}`);
    return v;
  };
}

/** A parser for an integer, >= `min` when given. */
export function integerAtLeast(flag: string, min?: number): (raw: string) => number {
  return (raw) => {
    const v = toNumber(flag, raw);
    if (!Number.isSafeInteger(v)) throw new Error(`${flag} must be an integer, got ${raw}`);
    if (min !== undefined && v < min) throw new Error(`${flag} must be an integer >= ${min}, got ${raw}`);
    return v;
  };
}

export interface LoadFlags {
  model: string;
  backend: BackendChoice;
  threads?: number;
  dtype: 'auto' | 'f32' | 'f16' | 'bf16';
  cacheSize?: number;
  kvQuant?: string;
}

/** --model, --backend, --dtype, --cache-size and --kv-quant: how the model is loaded. */
export function addLoadOptions(cmd: Command): Command {
  cmd
    .requiredOption('-m, --model <dir|file.gguf>', 'Hugging Face model directory (config.json, tokenizer.json, *.safetensors) or GGUF file')
    .addOption(new Option('--backend <name>', 'compute backend; auto takes WebGPU on a hardware GPU, else wasm (the fast CPU path); cpu is the TypeScript reference').choices([...BACKEND_CHOICES]).default('auto'))
    .option('--threads <n>', 'threads of the wasm backend (default: the physical cores)', integerAtLeast('--threads', 1))
    .addOption(new Option('--dtype <dtype>', 'storage dtype of the weight matrices; auto keeps the file\'s').choices(['auto', 'f32', 'f16', 'bf16']).default('auto'));
  cmd.option('--cache-size <n>', 'tokens each KV cache holds, allocated once (prompt + completion); default min(context length, 4096)', integerAtLeast('--cache-size', 1));
  cmd.addOption(new Option('--kv-quant <type>', 'quantize the KV cache (int8/int4: asymmetric per token and head; -sym: absmax)').choices([...KV_QUANT_FLAG_VALUES]));
  return cmd;
}

/**
 * The createPipeline options the load flags stand for (the model, backend, dtype, cache, plugins).
 * A directory whose config.json says its weights are 4-bit bitsandbytes gets the nf4() plugin.
 */
export async function pipelineOptions(flags: LoadFlags): Promise<PipelineOptions & { model: string; plugins: LithePlugin[] }> {
  const plugins: LithePlugin[] = [];
  const kv = flags.kvQuant ? parseKvQuantFlag(flags.kvQuant) : null;
  if (kv) plugins.push(kvQuant(kv));
  const config = await readModelJson(flags.model, 'config.json');
  if ((config?.quantization_config as { quant_method?: unknown } | undefined)?.quant_method === 'bitsandbytes') plugins.push(nf4());
  return { model: flags.model, backend: flags.backend, threads: flags.threads, dtype: flags.dtype, cacheSize: flags.cacheSize, plugins };
}

/** A cache size a command needs at least: --cache-size when given (checked), else exactly `needed`. */
export function cacheSizeFor(flags: LoadFlags, needed: number, what: string): number {
  if (flags.cacheSize === undefined) return needed;
  if (flags.cacheSize < needed) throw new Error(`--cache-size ${flags.cacheSize} is smaller than ${what} (${needed} tokens)`);
  return flags.cacheSize;
}

export interface SamplingFlags extends SamplingOptions {
  maxTokens: number;
  stop?: string[];
}

/** Sampling and stopping options of generate and chat. */
export function addSamplingOptions(cmd: Command, defaultMaxTokens: number): Command {
  return cmd
    .option('-n, --max-tokens <n>', 'most tokens to generate', integerAtLeast('--max-tokens', 1), defaultMaxTokens)
    .option('-t, --temperature <t>', '0 = greedy; default from generation_config.json, else 1', numberIn('--temperature', 'a number >= 0', (v) => v >= 0))
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', integerAtLeast('--top-k', 0))
    .option('--top-p <p>', 'nucleus sampling threshold (1 = off)', numberIn('--top-p', 'in (0, 1]', (v) => v > 0 && v <= 1))
    .option('--min-p <p>', 'keep tokens with probability >= p x the largest (0 = off)', numberIn('--min-p', 'in [0, 1]', (v) => v >= 0 && v <= 1))
    .option('--repetition-penalty <r>', 'penalty on tokens already seen (1 = off)', numberIn('--repetition-penalty', 'a number > 0', (v) => v > 0))
    .option('--seed <s>', 'seed for reproducible sampling', integerAtLeast('--seed'))
    .option('--stop <strings...>', 'stop before any of these strings');
}

/** The model's own sampling defaults (`pipeline.samplingDefaults`) under the flags given: flags win. */
export function generateOptions(flags: SamplingFlags, modelDefaults: SamplingOptions): GenerateOptions {
  return {
    maxTokens: flags.maxTokens,
    temperature: flags.temperature ?? modelDefaults.temperature ?? 1,
    topK: flags.topK ?? modelDefaults.topK,
    topP: flags.topP ?? modelDefaults.topP,
    minP: flags.minP,
    repetitionPenalty: flags.repetitionPenalty,
    seed: flags.seed,
    stop: flags.stop,
  };
}
