import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { hfWeightSource, loadHFDir, planQuantizedModel, withRecordedFormats, type BlockFormat } from '@lithe/core';
import { nodeModelFiles } from '@lithe/core/node';
import { quantizeModelDir } from '@lithe/nf4/node';
import { formatBytes, formatTable, printJson } from '../format.js';
import { progressBar } from '../progress.js';
import { fileSink } from './convert.js';

interface Flags {
  method: 'int8' | 'int4' | 'nf4' | 'fp4';
  format?: BlockFormat;
  model: string;
  out: string;
  json?: boolean;
}

const METHODS: Record<'int8' | 'int4', BlockFormat> = { int8: 'q8_0', int4: 'q4_0' };
const COPIED = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'chat_template.jinja'];

export function quantizeCommand(): Command {
  return new Command('quantize')
    .description('write a copy of a model with quantized linear weights (int8: q8_0, int4: q4_0, llama.cpp block layouts; nf4 / fp4: bitsandbytes layout); embeddings and norms stay float')
    .addOption(new Option('--method <method>', 'int8 (q8_0: 32 values + f16 scale), int4 (q4_0), nf4 or fp4 (block 64, double-quantized absmax)').choices(['int8', 'int4', 'nf4', 'fp4']).makeOptionMandatory())
    .addOption(new Option('--format <format>', 'block format, overriding --method\'s default').choices(['q8_0', 'q4_0', 'q4_1']))
    .requiredOption('-m, --model <dir>', 'Hugging Face model directory (f32, f16 or bf16)')
    .requiredOption('-o, --out <dir>', 'output directory (created; existing files are replaced)')
    .option('--json', 'print one JSON object')
    .action(run);
}

async function run(flags: Flags): Promise<void> {
  if (resolve(flags.out) === resolve(flags.model)) throw new Error('--out must differ from --model');
  if (flags.method === 'nf4' || flags.method === 'fp4') return runFourBit(flags, flags.method);
  const format = flags.format ?? METHODS[flags.method];
  const dir = await loadHFDir(nodeModelFiles(flags.model));
  const started = performance.now();
  try {
    const plan = planQuantizedModel({ config: dir.config, weights: withRecordedFormats(dir, hfWeightSource(dir)) }, format);
    await mkdir(flags.out, { recursive: true });
    const bar = flags.json ? null : progressBar('quantizing');
    try {
      const sink = fileSink(createWriteStream(join(flags.out, 'model.safetensors')));
      await plan.write(sink.write, (done, total) => bar?.update(done, total));
      await sink.close();
    } finally {
      bar?.stop();
    }
    await writeFile(join(flags.out, 'config.json'), `${JSON.stringify(plan.config, null, 2)}\n`);
    const files = nodeModelFiles(flags.model);
    for (const name of COPIED) if (await files.has(name)) await copyFile(join(flags.model, name), join(flags.out, name));
    const report = {
      model: flags.model,
      out: flags.out,
      format,
      quantized_tensors: plan.quantized.length,
      input_bytes: dir.weightBytes,
      output_bytes: plan.bytes,
      seconds: (performance.now() - started) / 1000,
    };
    if (flags.json) return printJson(report);
    console.log(
      formatTable([
        ['format', `${format} (${plan.quantized.length} linear weights)`],
        ['weights', `${formatBytes(report.input_bytes)} -> ${formatBytes(report.output_bytes)}`],
        ['written to', flags.out],
        ['time', `${report.seconds.toFixed(1)} s`],
      ]),
    );
  } finally {
    await dir.close();
  }
}

/** NF4 / FP4 through @lithe/nf4: the checkpoint layout bitsandbytes and transformers use. */
async function runFourBit(flags: Flags, type: 'nf4' | 'fp4'): Promise<void> {
  if (flags.format) throw new Error(`--format applies to --method int8|int4, not ${type}`);
  const started = performance.now();
  const r = await quantizeModelDir(flags.model, flags.out, { type });
  const report = {
    model: flags.model,
    out: flags.out,
    format: type,
    quantized_tensors: r.quantizedTensors,
    bits_per_parameter: r.bitsPerParameter,
    output_bytes: r.fileBytes,
    seconds: (performance.now() - started) / 1000,
  };
  if (flags.json) return printJson(report);
  console.log(
    formatTable([
      ['format', `${type}, block 64, double-quantized absmax (${r.quantizedTensors} linear weights)`],
      ['bits per parameter', r.bitsPerParameter.toFixed(3)],
      ['model.safetensors', formatBytes(r.fileBytes)],
      ['written to', flags.out],
      ['time', `${report.seconds.toFixed(1)} s`],
    ]),
  );
}
