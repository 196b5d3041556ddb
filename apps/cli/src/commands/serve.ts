import { Command } from 'commander';
import { parseBytes, parseCors, runServer } from '@lithe/server';
import { addChatTemplateOption, addLoadOptions, addSpeculativeOptions, integerAtLeast, pipelineOptions, type LoadFlags } from '../options.js';
import { progressBar } from '../progress.js';
import { formatBytes } from '../format.js';

interface Flags extends LoadFlags {
  host: string;
  port: number;
  apiKey?: string;
  maxQueue: number;
  parallel: number;
  kvBudget?: number;
  prefixCache: boolean;
  modelId?: string;
  drainTimeout: number;
  cors?: string;
  requestTimeout: number;
  writeTimeout: number;
  templateTimeoutMs: number;
  quiet?: boolean;
}

export function serveCommand(): Command {
  const cmd = new Command('serve').description('serve the model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models, /health, /metrics)');
  addLoadOptions(cmd);
  addSpeculativeOptions(cmd);
  addChatTemplateOption(cmd);
  return cmd
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0 picks a free one)', integerAtLeast('--port', 0), 8080)
    .option('--api-key <key>', 'require "Authorization: Bearer <key>" on /v1/* (or set LITHE_API_KEY)')
    .option('--max-queue <n>', 'requests that may wait for a slot; more get a 503', integerAtLeast('--max-queue', 0), 64)
    .option('--parallel <n>', 'generations running at once, batched into one model step per token', integerAtLeast('--parallel', 1), 1)
    .option(
      '--kv-budget <bytes>',
      "KV cache memory the server may hold, e.g. 2G or 1.5GiB; --parallel is capped at the caches of --cache-size tokens that fit (default: a quarter of the machine's memory, at most half of what is free)",
      (v: string) => parseBytes('kv-budget', v),
    )
    .option('--no-prefix-cache', 'do not reuse the KV of prompt prefixes across requests')
    .option('--model-id <id>', "model id clients send (default: the directory's name)")
    .option('--drain-timeout <s>', 'seconds to let requests finish on SIGTERM', integerAtLeast('--drain-timeout', 0), 30)
    .option('--cors <origins>', "origins that may call the server from a browser: '*' or a comma-separated list (default none)")
    .option('--request-timeout <s>', "seconds for a request's headers and body to arrive; then 408", integerAtLeast('--request-timeout', 1), 30)
    .option('--write-timeout <s>', 'seconds a stream waits for a client that does not read; then it is cut and its slot freed', integerAtLeast('--write-timeout', 1), 30)
    .option('--template-timeout-ms <ms>', 'time the chat template may take to render one prompt; then 500', integerAtLeast('--template-timeout-ms', 1), 2000)
    .option('--quiet', 'no request logs')
    .action(run);
}

async function run(flags: Flags): Promise<void> {
  const bar = progressBar('loading', formatBytes);
  const { model, backend, threads, dtype, cacheSize, plugins, checkTensors, chatTemplate } = await pipelineOptions(flags);
  await runServer({
    model,
    backend,
    threads,
    dtype,
    cacheSize,
    plugins,
    checkTensors,
    chatTemplate,
    host: flags.host,
    port: flags.port,
    apiKey: flags.apiKey ?? process.env.LITHE_API_KEY,
    maxQueue: flags.maxQueue,
    parallel: flags.parallel,
    kvBudget: flags.kvBudget,
    prefixCache: flags.prefixCache,
    modelId: flags.modelId,
    drainSeconds: flags.drainTimeout,
    cors: flags.cors !== undefined ? parseCors(flags.cors) : undefined,
    requestTimeoutMs: flags.requestTimeout * 1000,
    writeTimeoutMs: flags.writeTimeout * 1000,
    templateTimeoutMs: flags.templateTimeoutMs,
    logger: flags.quiet ? false : { level: 'info' },
    onProgress: (loaded, total) => (loaded >= total ? bar.stop() : bar.update(loaded, total)),
  });
}
