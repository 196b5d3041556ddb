import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { PluginDriver } from '@lithe/core';
import { parseStreamingFlags } from '@lithe/streaming';
import { formatNumber, formatTable, printJson } from '../format.js';
import { loadModel } from '../load-model.js';
import { readModelJson } from '@lithe/server';
import { addLoadOptions, backendJson, cacheSizeFor, integerAtLeast, pipelineOptions, type LoadFlags } from '../options.js';
import { progressBar } from '../progress.js';

interface Flags extends LoadFlags {
  file: string;
  context?: number;
  json?: boolean;
}

export function perplexityCommand(): Command {
  const cmd = new Command('perplexity').description('perplexity of a text file, in consecutive windows of --context tokens');
  addLoadOptions(cmd);
  return cmd
    .requiredOption('-f, --file <path>', 'UTF-8 text file to score')
    .option('-c, --context <n>', 'tokens per window (default 512, at most the model\'s context length; with --window any length, default the whole text)', integerAtLeast('--context', 2))
    .option('--json', 'print one JSON object')
    .action(run);
}

async function run(flags: Flags): Promise<void> {
  let text: string;
  try {
    text = await readFile(flags.file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read --file ${flags.file}: ${(err as Error).message}`, { cause: err });
  }
  const config = await readModelJson(flags.model, 'config.json');
  // A missing config.json is left for the loader to report.
  // Read as the pipeline will, plugins included (an LCKV model's config needs lckv()).
  const maxContext = config ? new PluginDriver((await pipelineOptions(flags)).plugins).readConfig(config, null).maxPositionEmbeddings : Infinity;
  // With --window (StreamingLLM) a window of any length is one stream, the whole text by default.
  const stream = parseStreamingFlags(flags) !== null;
  const context = flags.context ?? (stream ? Number.MAX_SAFE_INTEGER : Math.min(512, maxContext));
  if (context > maxContext && !stream) throw new Error(`--context ${context} exceeds the model's context length (max_position_embeddings ${maxContext}); --window <n> scores longer windows as one stream`);

  // The cache only needs one window (a rolling cache has its own size).
  const pipeline = await loadModel(flags, stream ? {} : { cacheSize: cacheSizeFor(flags, context, 'one window of --context') });
  const bar = flags.json ? null : progressBar('windows');
  try {
    const t0 = performance.now();
    const r = await pipeline.perplexity(text, { context, onWindow: (done, total) => bar?.update(done, total) });
    const seconds = (performance.now() - t0) / 1000;
    bar?.stop();
    if (flags.json) {
      printJson({ perplexity: r.perplexity, tokens: r.tokens, context: context === Number.MAX_SAFE_INTEGER ? null : context, mean_nll: r.meanNll, seconds, ...(stream ? { sinks: flags.sinks ?? 4, window: flags.window } : {}), ...backendJson(pipeline) });
    } else {
      console.log(
        formatTable([
          ['perplexity', formatNumber(r.perplexity, 4)],
          ['tokens scored', String(r.tokens)],
          ['context', context === Number.MAX_SAFE_INTEGER ? 'the whole text, one stream' : String(context)],
          ...(stream ? [['streaming', `${flags.sinks ?? 4} sinks + ${flags.window} window`] as const] : []),
          ['mean NLL', `${formatNumber(r.meanNll, 4)} nats/token`],
          ['time', `${formatNumber(seconds, 2)} s (${formatNumber(r.tokens / seconds, 1)} tok/s)`],
        ]),
      );
    }
  } finally {
    bar?.stop();
    pipeline.dispose();
  }
}
