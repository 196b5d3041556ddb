#!/usr/bin/env node
/**
 * lithe-server: the standalone command. `lithe serve` in @lithe/cli takes the same flags.
 *
 *   lithe-server --model <dir> [--host 127.0.0.1] [--port 8080] [--api-key K] [--max-queue N]
 *                [--parallel N] [--kv-budget BYTES] [--no-prefix-cache] [--backend NAME] [--threads N] [--dtype auto|f32|f16|bf16] [--cache-size N]
 *                [--model-id ID] [--max-body-bytes N] [--drain-timeout SECONDS] [--cors ORIGINS]
 *                [--request-timeout SECONDS] [--write-timeout SECONDS] [--template-timeout-ms MS]
 *                [--chat-template FILE|NAME] [--quiet]
 *                [--draft DIR|FILE.gguf|self-int8|self-int4 | --prompt-lookup [N]] [--draft-tokens K]
 *                [--window N [--sinks N]] [--flash-attn] [--kv-quant int8|int4] [--lckv-prefill iterative|sequential]
 *
 * Checkpoints that need a plugin to load (4-bit bitsandbytes, GPTQ, AWQ, LCKV) get it by themselves.
 *
 * SIGTERM or SIGINT: stop accepting requests, let those in flight finish (up to the drain
 * timeout), exit 0.
 */
import { parseArgs } from 'node:util';
import { speculative } from '@lithe/speculative';
import { parseCors } from './cors.js';
import { loadChatTemplateOption } from '@lithe/core/node';
import { parseStreamingFlags, streaming } from '@lithe/streaming';
import { flashAttention } from '@lithe/flash-attn';
import { kvQuant, parseKvQuantFlag } from '@lithe/kv-quant';
import { checkpointPlugins } from './checkpoint-plugins.js';
import { parseBytes } from './kv-budget.js';
import { runServer } from './run-server.js';
import type { StartServerOptions } from './start-server.js';

const HELP = `usage: lithe-server --model <dir> [options]

  -m, --model <dir>          Hugging Face model directory (required)
      --host <host>          interface to listen on (default 127.0.0.1)
      --port <n>             port (default 8080)
      --model-id <id>        model id clients send (default: the directory's name)
      --api-key <key>        require "Authorization: Bearer <key>" on /v1/*
      --max-queue <n>        requests that may wait for a slot; more get 503 (default 64)
      --parallel <n>         generations running at once, batched into one model step each
                             token (continuous batching; default 1)
      --kv-budget <bytes>    KV cache memory the server may hold, e.g. 2G or 1.5GiB (default: a
                             quarter of the machine's memory, at most half of what is free once
                             the model is loaded); each running generation takes one cache of
                             --cache-size tokens, so --parallel is capped at what fits
      --no-prefix-cache      do not reuse the KV of prompt prefixes across requests
      --backend <name>       auto (WebGPU on a GPU, else wasm), wasm, webgpu or cpu (default auto)
      --threads <n>          threads of the wasm backend (default: the physical cores)
      --dtype <dtype>        auto | f32 | f16 | bf16 (default auto)
      --cache-size <n>       tokens of context per request (default min(model context, 4096))
      --window <n>           StreamingLLM: keep the sinks and the last n tokens; prompts and
                             completions of any length, in constant memory
      --sinks <n>            StreamingLLM attention sinks kept for ever (default 4; needs --window)
      --flash-attn           tiled flash attention kernels (wasm backend, dense caches)
      --kv-quant <mode>      int8 | int4 | int8-sym | int4-sym KV cache (default none: f16)
      --lckv-prefill <mode>  LCKV models: iterative | sequential prompt encoding (default: the config's)
      --max-body-bytes <n>   largest request body (default 4194304)
      --drain-timeout <s>    seconds to let requests finish on SIGTERM (default 30)
      --cors <origins>       origins that may call from a browser: '*' or a comma list (default none)
      --request-timeout <s>  seconds for a request's headers and body to arrive; then 408 (default 30)
      --write-timeout <s>    seconds a stream waits for a client that does not read; then it is
                             cut and its slot freed (default 30)
      --template-timeout-ms <ms>  time the chat template may take per prompt; then 500 (default 2000)
      --chat-template <file|name>  chat template instead of the model's: a Jinja file, or
                             chatml, llama2, llama3, mistral, zephyr, gemma
      --quiet                no request logs
      --draft <d>            speculative decoding for every request: a draft model dir or .gguf
                             sharing the vocabulary, self-int8 or self-int4 (a quantized copy)
      --prompt-lookup [n]    speculative decoding with n-grams of the prompt as the draft (n default 3)
      --draft-tokens <k>     tokens drafted per step (default 4)
  -h, --help
`;

function int(name: string, raw: string | undefined, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (!(raw.trim() !== '' && Number.isSafeInteger(v) && v >= min)) throw new Error(`--${name} must be an integer >= ${min}, got '${raw}'`);
  return v;
}

function oneOf<T extends string>(name: string, raw: string | undefined, values: readonly T[]): T | undefined {
  if (raw === undefined) return undefined;
  if (!(values as readonly string[]).includes(raw)) throw new Error(`--${name} must be one of ${values.join(', ')}, got '${raw}'`);
  return raw as T;
}

const seconds = (s: number | undefined) => (s === undefined ? undefined : s * 1000);

/** The speculative() plugin the flags ask for, if any. */
function speculation(draft: string | undefined, lookup: string | undefined, tokens: number | undefined) {
  if (draft !== undefined && lookup !== undefined) throw new Error('--draft and --prompt-lookup are two kinds of draft; give one of them');
  if (tokens !== undefined && draft === undefined && lookup === undefined) throw new Error('--draft-tokens needs --draft or --prompt-lookup');
  if (draft !== undefined) return [speculative({ draft, tokens })];
  if (lookup !== undefined) return [speculative({ draft: 'prompt-lookup', tokens, ngram: lookup === '' ? undefined : int('prompt-lookup', lookup, 1) })];
  return [];
}

async function main(): Promise<void> {
  // `--prompt-lookup` may come without its value.
  const args = process.argv.slice(2).map((a, i, all) => (a === '--prompt-lookup' && !/^\d+$/.test(all[i + 1] ?? '') ? '--prompt-lookup=' : a));
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string', short: 'm' },
      host: { type: 'string' },
      port: { type: 'string' },
      'model-id': { type: 'string' },
      'api-key': { type: 'string' },
      'max-queue': { type: 'string' },
      parallel: { type: 'string' },
      'kv-budget': { type: 'string' },
      'no-prefix-cache': { type: 'boolean' },
      backend: { type: 'string' },
      threads: { type: 'string' },
      dtype: { type: 'string' },
      'cache-size': { type: 'string' },
      window: { type: 'string' },
      sinks: { type: 'string' },
      'max-body-bytes': { type: 'string' },
      'drain-timeout': { type: 'string' },
      cors: { type: 'string' },
      'request-timeout': { type: 'string' },
      'write-timeout': { type: 'string' },
      'template-timeout-ms': { type: 'string' },
      'chat-template': { type: 'string' },
      quiet: { type: 'boolean' },
      'flash-attn': { type: 'boolean' },
      'kv-quant': { type: 'string' },
      'lckv-prefill': { type: 'string' },
      draft: { type: 'string' },
      'draft-tokens': { type: 'string' },
      'prompt-lookup': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return void process.stdout.write(HELP);
  if (!values.model) throw new Error('--model <dir> is required (run with --help for usage)');

  const stream = parseStreamingFlags({ sinks: int('sinks', values.sinks, 0), window: int('window', values.window, 1) });
  const kv = values['kv-quant'] === undefined ? null : parseKvQuantFlag(values['kv-quant']);
  const checkpoint = await checkpointPlugins(values.model, { lckvPrefill: oneOf('lckv-prefill', values['lckv-prefill'], ['iterative', 'sequential'] as const) });
  await runServer({
    model: values.model,
    host: values.host,
    port: int('port', values.port, 0),
    modelId: values['model-id'],
    apiKey: values['api-key'] ?? process.env.LITHE_API_KEY,
    maxQueue: int('max-queue', values['max-queue'], 0),
    parallel: int('parallel', values.parallel, 1),
    kvBudget: values['kv-budget'] === undefined ? undefined : parseBytes('kv-budget', values['kv-budget']),
    prefixCache: values['no-prefix-cache'] ? false : undefined,
    // createPipeline names the backends it knows when given another.
    backend: values.backend as StartServerOptions['backend'],
    threads: int('threads', values.threads, 1),
    dtype: oneOf('dtype', values.dtype, ['auto', 'f32', 'f16', 'bf16'] as const),
    cacheSize: int('cache-size', values['cache-size'], 1),
    maxBodyBytes: int('max-body-bytes', values['max-body-bytes'], 1),
    logger: values.quiet ? false : { level: 'info' },
    drainSeconds: int('drain-timeout', values['drain-timeout'], 0),
    cors: values.cors !== undefined ? parseCors(values.cors) : undefined,
    requestTimeoutMs: seconds(int('request-timeout', values['request-timeout'], 1)),
    writeTimeoutMs: seconds(int('write-timeout', values['write-timeout'], 1)),
    templateTimeoutMs: int('template-timeout-ms', values['template-timeout-ms'], 1),
    chatTemplate: values['chat-template'] === undefined ? undefined : loadChatTemplateOption(values['chat-template']),
    plugins: [
      ...(kv ? [kvQuant(kv)] : []),
      ...(values['flash-attn'] ? [flashAttention()] : []),
      ...speculation(values.draft, values['prompt-lookup'], int('draft-tokens', values['draft-tokens'], 1)),
      ...(stream ? [streaming(stream)] : []),
      ...checkpoint,
    ],
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
