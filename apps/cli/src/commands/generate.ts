import { Command } from 'commander';
import { formatNumber, printJson } from '../format.js';
import { loadModel } from '../load-model.js';
import { addLoadOptions, addSpeculativeOptions, addSamplingOptions, backendJson, generateOptions, speculationSummary, speculativeJson, type LoadFlags, type SamplingFlags } from '../options.js';

interface Flags extends LoadFlags, SamplingFlags {
  prompt: string;
  json?: boolean;
}

export function generateCommand(): Command {
  const cmd = new Command('generate').description('complete a prompt, streaming the text to stdout');
  addLoadOptions(cmd);
  addSpeculativeOptions(cmd);
  cmd.requiredOption('-p, --prompt <text>', 'the prompt (the BOS token is added)');
  addSamplingOptions(cmd);
  return cmd.option('--json', 'print one JSON object with the text, token ids and timings at the end').action(run);
}

async function run(flags: Flags): Promise<void> {
  const pipeline = await loadModel(flags);
  try {
    const opts = generateOptions(flags, pipeline.samplingDefaults);
    const generation = pipeline.generate(flags.prompt, opts);
    if (!flags.json) {
      for await (const ev of generation) process.stdout.write(ev.text);
      process.stdout.write('\n');
    }
    const r = await generation.result;
    const t = r.timings;
    if (flags.json) {
      printJson({
        text: r.text,
        token_ids: r.tokenIds,
        prompt_tokens: r.promptTokens,
        completion_tokens: r.completionTokens,
        finish_reason: r.finishReason,
        ttft_ms: t.ttftMs,
        prefill_tok_s: t.prefillTokensPerSecond,
        decode_tok_s: t.decodeTokensPerSecond,
        peak_memory_bytes: r.peakMemoryBytes,
        ...backendJson(pipeline),
        ...speculativeJson(r.stats),
      });
    } else {
      // Stats go to stderr so stdout holds only the completion.
      process.stderr.write(
        `[${r.promptTokens} prompt + ${r.completionTokens} generated tokens, finish: ${r.finishReason}, ` +
          `ttft ${formatNumber(t.ttftMs, 1)} ms, prefill ${formatNumber(t.prefillTokensPerSecond, 1)} tok/s, decode ${formatNumber(t.decodeTokensPerSecond, 1)} tok/s` +
          speculationSummary(r.stats) +
          ']\n',
      );
    }
  } finally {
    pipeline.dispose();
  }
}
