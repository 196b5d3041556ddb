import { Command } from 'commander';
import { runServer } from '@lithe/server';
import { addLoadOptions, integerAtLeast, pipelineOptions, type LoadFlags } from '../options.js';
import { progressBar } from '../progress.js';
import { formatBytes } from '../format.js';

interface Flags extends LoadFlags {
  host: string;
  port: number;
  apiKey?: string;
  maxQueue: number;
  parallel: number;
  modelId?: string;
  drainTimeout: number;
  quiet?: boolean;
}

export function serveCommand(): Command {
  const cmd = new Command('serve').description('serve the model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models, /health, /metrics)');
  addLoadOptions(cmd);
  return cmd
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0 picks a free one)', integerAtLeast('--port', 0), 8080)
    .option('--api-key <key>', 'require "Authorization: Bearer <key>" on /v1/* (or set LITHE_API_KEY)')
    .option('--max-queue <n>', 'requests that may wait for a slot; more get a 503', integerAtLeast('--max-queue', 0), 64)
    .option('--parallel <n>', 'generations running at once', integerAtLeast('--parallel', 1), 1)
    .option('--model-id <id>', "model id clients send (default: the directory's name)")
    .option('--drain-timeout <s>', 'seconds to let requests finish on SIGTERM', integerAtLeast('--drain-timeout', 0), 30)
    .option('--quiet', 'no request logs')
    .action(run);
}

async function run(flags: Flags): Promise<void> {
  const bar = progressBar('loading', formatBytes);
  const { model, backend, threads, dtype, cacheSize, plugins } = await pipelineOptions(flags);
  await runServer({
    model,
    backend,
    threads,
    dtype,
    cacheSize,
    plugins,
    host: flags.host,
    port: flags.port,
    apiKey: flags.apiKey ?? process.env.LITHE_API_KEY,
    maxQueue: flags.maxQueue,
    parallel: flags.parallel,
    modelId: flags.modelId,
    drainSeconds: flags.drainTimeout,
    logger: flags.quiet ? false : { level: 'info' },
    onProgress: (loaded, total) => (loaded >= total ? bar.stop() : bar.update(loaded, total)),
  });
}
