import { createWriteStream, type WriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { GGUF_OUT_TYPES, convertToGGUF, hfWeightSource, loadHFDir, withRecordedFormats, type GGUFOutType } from '@lithe/core';
import { nodeModelFiles } from '@lithe/core/node';
import { formatBytes, formatTable, printJson } from '../format.js';
import { progressBar } from '../progress.js';

interface Flags {
  model: string;
  to: 'gguf';
  type: GGUFOutType;
  out: string;
  json?: boolean;
}

export function convertCommand(): Command {
  return new Command('convert')
    .description('convert a Hugging Face model directory to a GGUF file that llama.cpp loads')
    .requiredOption('-m, --model <dir>', 'Hugging Face model directory (float or lithe-quantized)')
    .addOption(new Option('--to <format>', 'output format').choices(['gguf']).default('gguf'))
    .addOption(new Option('--type <type>', 'tensor type of the weight matrices (norms stay F32)').choices([...GGUF_OUT_TYPES]).default('f16'))
    .requiredOption('-o, --out <file>', 'output .gguf file')
    .option('--json', 'print one JSON object')
    .action(run);
}

/** Writes chunks to a stream, waiting when its buffer is full so memory stays bounded. */
export function fileSink(stream: WriteStream): { write: (chunk: Uint8Array) => Promise<void>; close: () => Promise<void>; bytes: () => number } {
  let bytes = 0;
  let failed: Error | null = null;
  stream.on('error', (err) => (failed = err));
  return {
    write: async (chunk) => {
      if (failed) throw failed;
      bytes += chunk.length;
      if (!stream.write(chunk)) {
        await new Promise<void>((res) => {
          const done = () => {
            stream.off('drain', done);
            stream.off('error', done);
            res();
          };
          stream.on('drain', done);
          stream.on('error', done);
        });
        if (failed) throw failed;
      }
    },
    close: () =>
      new Promise<void>((res, rej) => {
        if (failed) return rej(failed);
        stream.end((err?: Error | null) => (err ? rej(err) : res()));
      }),
    bytes: () => bytes,
  };
}

async function run(flags: Flags): Promise<void> {
  if (!flags.out.endsWith('.gguf')) throw new Error(`--out ${flags.out}: the output file name must end in .gguf`);
  const dir = await loadHFDir(nodeModelFiles(flags.model));
  const started = performance.now();
  // Written under a temporary name and renamed at the end, so a failed run leaves no partial file.
  const partial = `${flags.out}.partial-${process.pid}`;
  try {
    if (!dir.tokenizerJson) throw new Error(`${flags.model}: tokenizer.json is missing; a GGUF file carries the tokenizer`);
    const quant = (dir.config.quantization_config as { quant_method?: unknown } | undefined)?.quant_method;
    if (quant === 'bitsandbytes') {
      throw new Error(
        `${flags.model} holds 4-bit bitsandbytes (nf4/fp4) weights, which GGUF has no tensor type for; ` +
          `convert the float model it was quantized from (lithe convert --type q4_0 gives a 4-bit GGUF)`,
      );
    }
    const bar = flags.json ? null : progressBar('converting');
    const sink = fileSink(createWriteStream(partial));
    try {
      const name = flags.model.replace(/\/+$/, '').split('/').pop() ?? 'model';
      await convertToGGUF(
        { name, config: dir.config, weights: withRecordedFormats(dir, hfWeightSource(dir)), tokenizerJson: dir.tokenizerJson, tokenizerConfig: dir.tokenizerConfig },
        flags.type,
        sink.write,
        (done, total) => bar?.update(done, total),
      );
      await sink.close();
    } catch (e) {
      await sink.close().catch(() => {});
      throw e;
    } finally {
      bar?.stop();
    }
    await rename(partial, flags.out);
    const report = { model: flags.model, out: flags.out, type: flags.type, bytes: sink.bytes(), seconds: (performance.now() - started) / 1000 };
    if (flags.json) return printJson(report);
    console.log(formatTable([['wrote', `${flags.out} (${formatBytes(report.bytes)}, ${flags.type})`], ['time', `${report.seconds.toFixed(1)} s`]]));
  } finally {
    await rm(partial, { force: true });
    await dir.close();
  }
}
