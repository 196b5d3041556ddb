/**
 * Options shared by several commands, and the parsers that validate numeric values. A bad value
 * throws an error naming the option and the accepted range, e.g. `--top-p must be in (0, 1], got 2`.
 */
import { Option, type Command } from 'commander';
import { BACKEND_CHOICES, BUILTIN_CHAT_TEMPLATE_NAMES, DEFAULT_MAX_TOKENS, type BackendChoice, type GenerateOptions, type LithePlugin, type Pipeline, type PipelineOptions, type SamplingOptions } from '@lithe/core';
import { loadChatTemplateOption } from '@lithe/core/node';
import { KV_QUANT_FLAG_VALUES, kvQuant, parseKvQuantFlag } from '@lithe/kv-quant';
import { speculative, type SpeculativeStats } from '@lithe/speculative';
import { parseStreamingFlags, streaming } from '@lithe/streaming';
import { flashAttention } from '@lithe/flash-attn';
import { checkpointPlugins } from '@lithe/server';

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
  kvDtype?: 'f16' | 'f32';
  flashAttn?: boolean;
  checkTensors?: boolean;
  /** --chat-template (chat and serve): a file or a built-in name. */
  chatTemplate?: string;
  /** Speculative decoding, on the commands that take addSpeculativeOptions. */
  draft?: string;
  draftTokens?: number;
  promptLookup?: number | true;
  sinks?: number;
  window?: number;
  lckvPrefill?: 'iterative' | 'sequential';
}

/** --model, --backend, --dtype, --cache-size, --kv-dtype and --kv-quant: how the model is loaded. */
export function addLoadOptions(cmd: Command): Command {
  cmd
    .requiredOption('-m, --model <dir|file.gguf>', 'Hugging Face model directory (config.json, tokenizer.json, *.safetensors) or GGUF file; an http(s) URL of either; or hf:owner/repo[@revision] (HF_ENDPOINT, HF_TOKEN; HF_HUB_OFFLINE; downloads kept in the Hugging Face cache, $HF_HOME/hub or ~/.cache/huggingface/hub, shared with huggingface_hub; in LITHE_CACHE instead when it is set)')
    .addOption(new Option('--backend <name>', 'compute backend; auto takes WebGPU on a hardware GPU, else wasm (the fast CPU path); cpu is the TypeScript reference').choices([...BACKEND_CHOICES]).default('auto'))
    .option('--threads <n>', 'threads of the wasm backend (default: the physical cores)', integerAtLeast('--threads', 1))
    .addOption(new Option('--dtype <dtype>', 'storage dtype of the weight matrices; auto keeps the file\'s').choices(['auto', 'f32', 'f16', 'bf16']).default('auto'));
  cmd.option('--cache-size <n>', 'tokens each KV cache holds, allocated once (prompt + completion); default min(context length, 4096)', integerAtLeast('--cache-size', 1));
  cmd.addOption(new Option('--kv-dtype <dtype>', 'element type of the (unquantized) KV cache').choices(['f16', 'f32']).default('f16'));
  cmd.addOption(new Option('--kv-quant <type>', 'quantize the KV cache (int8/int4: asymmetric per token and head; -sym: absmax)').choices([...KV_QUANT_FLAG_VALUES]));
  cmd.option('--flash-attn', 'tiled flash attention kernels (wasm backend, dense f32/f16 caches; others keep their kernel)');
  cmd.option('--check-tensors', 'scan every weight for NaN/Inf while loading (slower)');
  cmd.option('--window <n>', 'StreamingLLM: keep only the sinks and the last n tokens, so generation and scoring run past the context in constant memory', integerAtLeast('--window', 1));
  cmd.option('--sinks <n>', 'StreamingLLM: first tokens kept for ever, the attention sinks (default 4; needs --window)', integerAtLeast('--sinks', 0));
  cmd.addOption(new Option('--lckv-prefill <mode>', "LCKV models: encode prompts with the paper's iterative parallel pass or exactly, token by token (default: the config's use_sequential)").choices(['iterative', 'sequential']));
  return cmd;
}

/** --chat-template <file|name> of chat and serve. */
export function addChatTemplateOption(cmd: Command): Command {
  return cmd.option('--chat-template <file|name>', `chat template instead of the model's: a Jinja file, or one of ${BUILTIN_CHAT_TEMPLATE_NAMES.join(', ')}`);
}

/**
 * A flag's text with backslash escapes decoded, so `--stop "\n\n"` means two newlines as it does in
 * other tools: \n \r \t \0 \\ \" \' \xHH \uHHHH; any other backslash stays as written.
 */
export function decodeEscapes(raw: string): string {
  const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', '0': '\0', '\\': '\\', '"': '"', "'": "'" };
  return raw.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)/gs, (m, e: string) => {
    if (e.length > 1) return String.fromCharCode(parseInt(e.slice(1), 16));
    return simple[e] ?? m;
  });
}

/**
 * The createPipeline options the load flags stand for (the model, backend, dtype, cache, plugins).
 * A directory whose config.json says its weights are 4-bit bitsandbytes gets the nf4() plugin, one
 * whose weights are GPTQ (AutoGPTQ layout) the gptq() plugin, AWQ (AutoAWQ GEMM) the awq() one, and
 * an LCKV model (model_type 'lckv-llama') the lckv() plugin.
 */
export async function pipelineOptions(flags: LoadFlags): Promise<PipelineOptions & { model: string; plugins: LithePlugin[] }> {
  const plugins: LithePlugin[] = [];
  const kv = flags.kvQuant ? parseKvQuantFlag(flags.kvQuant) : null;
  if (kv) plugins.push(kvQuant(kv));
  if (flags.flashAttn) plugins.push(flashAttention());
  const spec = speculativePlugin(flags);
  if (spec) plugins.push(spec);
  const stream = parseStreamingFlags(flags);
  if (stream) plugins.push(streaming(stream));
  plugins.push(...(await checkpointPlugins(flags.model, { lckvPrefill: flags.lckvPrefill })));
  return {
    model: flags.model,
    backend: flags.backend,
    threads: flags.threads,
    dtype: flags.dtype,
    cacheSize: flags.cacheSize,
    kvDtype: flags.kvDtype,
    plugins,
    checkTensors: flags.checkTensors,
    chatTemplate: flags.chatTemplate === undefined ? undefined : loadChatTemplateOption(flags.chatTemplate),
  };
}

/** The backend fields of every --json report: what --backend auto chose, and its threads (null on a GPU). */
export function backendJson(pipeline: Pipeline): { backend: string; threads: number | null } {
  const threads = (pipeline.backend as { threads?: number }).threads;
  return { backend: pipeline.backend.name, threads: pipeline.backend.name === 'cpu' ? 1 : (threads ?? null) };
}

/** --draft, --draft-tokens and --prompt-lookup: speculative decoding (generate, chat, bench, serve). */
export function addSpeculativeOptions(cmd: Command): Command {
  return cmd
    .option('--draft <dir|file.gguf|self-int8|self-int4>', 'speculative decoding with this draft: a model sharing the vocabulary, or a q8_0 / q4_0 copy of the model made at load')
    .option('--draft-tokens <k>', 'tokens drafted per step (default 4)', integerAtLeast('--draft-tokens', 1))
    .option('--prompt-lookup [n]', 'speculative decoding with n-grams of the prompt and text so far as the draft (longest n-gram n, default 3)', integerAtLeast('--prompt-lookup', 1));
}

/** The speculative() plugin the flags ask for, or null. */
export function speculativePlugin(flags: Pick<LoadFlags, 'draft' | 'draftTokens' | 'promptLookup'>): LithePlugin | null {
  if (flags.draft && flags.promptLookup) throw new Error('--draft and --prompt-lookup are two kinds of draft; give one of them');
  if (flags.draftTokens !== undefined && !flags.draft && !flags.promptLookup) throw new Error('--draft-tokens needs --draft or --prompt-lookup');
  if (flags.draft) return speculative({ draft: flags.draft, tokens: flags.draftTokens });
  if (flags.promptLookup) return speculative({ draft: 'prompt-lookup', tokens: flags.draftTokens, ngram: flags.promptLookup === true ? undefined : flags.promptLookup });
  return null;
}

/** `acceptance_rate` (per draft position) and `mean_accepted` for --json, when the run speculated. */
export function speculativeJson(stats: Record<string, unknown> | undefined): { acceptance_rate?: number[]; mean_accepted?: number; draft?: string } {
  const s = stats?.speculative as SpeculativeStats | undefined;
  return s ? { draft: s.draft, acceptance_rate: s.acceptanceRate, mean_accepted: s.meanAccepted } : {};
}

/** ", draft self-int8: 2.31 accepted per step, acceptance [0.9, 0.7, ...]" for the human-readable lines. */
export function speculationSummary(stats: Record<string, unknown> | undefined): string {
  const s = stats?.speculative as SpeculativeStats | undefined;
  if (!s) return '';
  return `, draft ${s.draft}: ${s.meanAccepted.toFixed(2)} accepted per step, acceptance by position [${s.acceptanceRate.map((a) => a.toFixed(2)).join(', ')}]`;
}

/** A cache size a command needs at least: --cache-size when given (checked), else exactly `needed`. */
export function cacheSizeFor(flags: LoadFlags, needed: number, what: string): number {
  if (flags.cacheSize === undefined) return needed;
  if (flags.cacheSize < needed) throw new Error(`--cache-size ${flags.cacheSize} is smaller than ${what} (${needed} tokens)`);
  return flags.cacheSize;
}

export interface SamplingFlags extends SamplingOptions {
  /** Default: the pipeline's (generation_config.json's max_new_tokens, else DEFAULT_MAX_TOKENS). */
  maxTokens?: number;
  stop?: string[];
}

/** Sampling and stopping options of generate and chat. */
export function addSamplingOptions(cmd: Command): Command {
  return cmd
    .option('-n, --max-tokens <n>', `most tokens to generate (default: generation_config.json's max_new_tokens, else ${DEFAULT_MAX_TOKENS})`, integerAtLeast('--max-tokens', 1))
    .option('-t, --temperature <t>', '0 = greedy; default from generation_config.json, else 1', numberIn('--temperature', 'a number >= 0', (v) => v >= 0))
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', integerAtLeast('--top-k', 0))
    .option('--top-p <p>', 'nucleus sampling threshold (1 = off)', numberIn('--top-p', 'in (0, 1]', (v) => v > 0 && v <= 1))
    .option('--min-p <p>', 'keep tokens with probability >= p x the largest (0 = off)', numberIn('--min-p', 'in [0, 1]', (v) => v >= 0 && v <= 1))
    .option('--repetition-penalty <r>', 'penalty on tokens already seen (1 = off)', numberIn('--repetition-penalty', 'a number > 0', (v) => v > 0))
    .option('--seed <s>', 'seed for reproducible sampling', integerAtLeast('--seed'))
    .option('--stop <strings...>', 'stop before any of these strings (escapes such as \\n and \\t are decoded)');
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
    stop: flags.stop?.map(decodeEscapes),
  };
}
