#!/usr/bin/env node
/**
 * lithe-server: the standalone command. `lithe serve` in @lithe/cli takes the same flags.
 *
 *   lithe-server --model <dir> [--host 127.0.0.1] [--port 8080] [--api-key K] [--max-queue N]
 *                [--parallel N] [--backend NAME] [--threads N] [--dtype auto|f32|f16|bf16] [--cache-size N]
 *                [--model-id ID] [--max-body-bytes N] [--drain-timeout SECONDS] [--quiet]
 *
 * SIGTERM or SIGINT: stop accepting requests, let those in flight finish (up to the drain
 * timeout), exit 0.
 */
import { parseArgs } from 'node:util';
import { runServer } from './run-server.js';
import type { StartServerOptions } from './start-server.js';

const HELP = `usage: lithe-server --model <dir> [options]

  -m, --model <dir>          Hugging Face model directory (required)
      --host <host>          interface to listen on (default 127.0.0.1)
      --port <n>             port (default 8080)
      --model-id <id>        model id clients send (default: the directory's name)
      --api-key <key>        require "Authorization: Bearer <key>" on /v1/*
      --max-queue <n>        requests that may wait for a slot; more get 503 (default 64)
      --parallel <n>         generations running at once (default 1)
      --backend <name>       auto (WebGPU on a GPU, else wasm), wasm, webgpu or cpu (default auto)
      --threads <n>          threads of the wasm backend (default: the physical cores)
      --dtype <dtype>        auto | f32 | f16 | bf16 (default auto)
      --cache-size <n>       tokens of context per request (default min(model context, 4096))
      --max-body-bytes <n>   largest request body (default 4194304)
      --drain-timeout <s>    seconds to let requests finish on SIGTERM (default 30)
      --quiet                no request logs
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', short: 'm' },
      host: { type: 'string' },
      port: { type: 'string' },
      'model-id': { type: 'string' },
      'api-key': { type: 'string' },
      'max-queue': { type: 'string' },
      parallel: { type: 'string' },
      backend: { type: 'string' },
      threads: { type: 'string' },
      dtype: { type: 'string' },
      'cache-size': { type: 'string' },
      'max-body-bytes': { type: 'string' },
      'drain-timeout': { type: 'string' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return void process.stdout.write(HELP);
  if (!values.model) throw new Error('--model <dir> is required (run with --help for usage)');

  await runServer({
    model: values.model,
    host: values.host,
    port: int('port', values.port, 0),
    modelId: values['model-id'],
    apiKey: values['api-key'] ?? process.env.LITHE_API_KEY,
    maxQueue: int('max-queue', values['max-queue'], 0),
    parallel: int('parallel', values.parallel, 1),
    // createPipeline names the backends it knows when given another.
    backend: values.backend as StartServerOptions['backend'],
    threads: int('threads', values.threads, 1),
    dtype: oneOf('dtype', values.dtype, ['auto', 'f32', 'f16', 'bf16'] as const),
    cacheSize: int('cache-size', values['cache-size'], 1),
    maxBodyBytes: int('max-body-bytes', values['max-body-bytes'], 1),
    logger: values.quiet ? false : { level: 'info' },
    drainSeconds: int('drain-timeout', values['drain-timeout'], 0),
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
