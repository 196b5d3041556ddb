import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { BLOCK_FORMATS, hfWeightSource, loadHFDir, planQuantizedModel, withRecordedFormats, type BlockFormat } from '@lithe/core';
import { nodeModelFiles } from '@lithe/core/node';
import { quantizeModelDir } from '@lithe/nf4/node';
import { quantizeModelDir as quantizeGptqDir } from '@lithe/gptq/node';
import { quantizeModelDir as quantizeAwqDir } from '@lithe/awq/node';
import { readFile } from 'node:fs/promises';
import { formatBytes, formatTable, printJson } from '../format.js';
import { progressBar } from '../progress.js';
import { fileSink } from './convert.js';

interface Flags {
  method: 'int8' | 'int4' | 'nf4' | 'fp4' | 'gptq' | 'rtn' | 'awq';
  format?: BlockFormat;
  bits?: number;
  groupSize?: number;
  actOrder?: boolean;
  sym?: boolean;
  damp?: number;
  calibration?: string;
  samples?: number;
  seqLen?: number;
  searchSamples?: number;
  duoScaling?: boolean;
  model: string;
  out: string;
  json?: boolean;
}

const METHODS: Record<'int8' | 'int4', BlockFormat> = { int8: 'q8_0', int4: 'q4_0' };
const COPIED = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'chat_template.jinja'];

export function quantizeCommand(): Command {
  return new Command('quantize')
    .description('write a copy of a model with quantized linear weights (int8: q8_0, int4: q4_0, llama.cpp block layouts; nf4 / fp4: bitsandbytes layout; gptq / rtn: AutoGPTQ layout; awq: AutoAWQ GEMM layout); embeddings and norms stay float')
    .addOption(new Option('--method <method>', 'int8 (q8_0: 32 values + f16 scale), int4 (q4_0), nf4 or fp4 (block 64, double-quantized absmax), gptq (calibrated, needs --calibration), rtn (round-to-nearest, same layout as gptq) or awq (activation-aware 4-bit with zero points, needs --calibration)').choices(['int8', 'int4', 'nf4', 'fp4', 'gptq', 'rtn', 'awq']).makeOptionMandatory())
    .addOption(new Option('--format <format>', 'block format, overriding --method\'s default').choices(['q8_0', 'q4_0', 'q4_1']))
    .requiredOption('-m, --model <dir>', 'Hugging Face model directory (f32, f16 or bf16)')
    .requiredOption('-o, --out <dir>', 'output directory (created; existing files are replaced)')
    .addOption(new Option('--bits <n>', 'gptq / rtn: bits per weight').choices(['2', '3', '4', '8']).default('4').argParser(Number))
    .option('--group-size <n>', 'gptq / rtn / awq: weights per scale and zero point (32, 64, 128; -1: one per output row, gptq / rtn only)', intArg('--group-size'), 128)
    .option('--act-order', 'gptq: quantize columns by decreasing activation energy (desc_act, stores g_idx)')
    .option('--sym', 'gptq / rtn: symmetric (fixed zero point) instead of asymmetric')
    .option('--damp <f>', 'gptq: dampening, a fraction of the mean Hessian diagonal', Number, 0.01)
    .option('--calibration <file>', 'gptq / awq: calibration text file (distinct from the text you will evaluate on)')
    .option('--samples <n>', 'gptq / awq: calibration windows', intArg('--samples'), 128)
    .option('--seq-len <n>', 'gptq / awq: tokens per calibration window', intArg('--seq-len'), 512)
    .option('--search-samples <n>', "awq: windows the scale search scores each α on, by the block's output (default: every window)", intArg('--search-samples'))
    .option('--duo-scaling', 'awq: scales from activations and weights, mean|x|^α / mean|w|^(1-α) (AutoAWQ\'s default), instead of mean|x|^α alone')
    .option('--json', 'print one JSON object')
    .action(run);
}

async function run(flags: Flags): Promise<void> {
  if (resolve(flags.out) === resolve(flags.model)) throw new Error('--out must differ from --model');
  if (flags.method === 'nf4' || flags.method === 'fp4') return runFourBit(flags, flags.method);
  if (flags.method === 'gptq' || flags.method === 'rtn') return runGptq(flags, flags.method);
  if (flags.method === 'awq') return runAwq(flags);
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
    const { blockSize, blockBytes } = BLOCK_FORMATS[format];
    const report: QuantizeReport = {
      model: flags.model,
      out: flags.out,
      format,
      quantized_tensors: plan.quantized.length,
      bits_per_parameter: (blockBytes * 8) / blockSize,
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

/** `quantize --json`: the same keys for every method. bits_per_parameter: bits per quantized weight, scales included. */
interface QuantizeReport {
  model: string;
  out: string;
  format: string;
  quantized_tensors: number;
  bits_per_parameter: number;
  input_bytes: number;
  output_bytes: number;
  seconds: number;
}

/** NF4 / FP4 through @lithe/nf4: the checkpoint layout bitsandbytes and transformers use. */
async function runFourBit(flags: Flags, type: 'nf4' | 'fp4'): Promise<void> {
  if (flags.format) throw new Error(`--format applies to --method int8|int4, not ${type}`);
  const started = performance.now();
  const source = await loadHFDir(nodeModelFiles(flags.model));
  const inputBytes = source.weightBytes;
  await source.close();
  const r = await quantizeModelDir(flags.model, flags.out, { type });
  const report: QuantizeReport = {
    model: flags.model,
    out: flags.out,
    format: type,
    quantized_tensors: r.quantizedTensors,
    bits_per_parameter: r.bitsPerParameter,
    input_bytes: inputBytes,
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

function intArg(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new Error(`${name} must be an integer, got '${v}'`);
    return n;
  };
}

/** GPTQ (calibrated) or round-to-nearest through @lithe/gptq: the AutoGPTQ checkpoint layout. */
async function runGptq(flags: Flags, method: 'gptq' | 'rtn'): Promise<void> {
  if (flags.searchSamples !== undefined) throw new Error(`--search-samples applies to --method awq, not ${method}`);
  if (flags.duoScaling) throw new Error(`--duo-scaling applies to --method awq, not ${method}`);
  if (flags.format) throw new Error(`--format applies to --method int8|int4, not ${method}`);
  if (method === 'gptq' && !flags.calibration) throw new Error('--method gptq needs --calibration FILE (text to calibrate on, e.g. a few thousand lines of the kind of text the model sees)');
  const calibrationText = flags.calibration ? await readFile(flags.calibration, 'utf8') : undefined;
  const started = performance.now();
  let bar: ReturnType<typeof progressBar> | null = null;
  let block = -1;
  let calibration: [number, number] | null = null;
  try {
    const r = await quantizeGptqDir(flags.model, flags.out, {
      method,
      bits: flags.bits as 2 | 3 | 4 | 8,
      groupSize: flags.groupSize ?? 128,
      actOrder: flags.actOrder ?? false,
      sym: flags.sym ?? false,
      damp: flags.damp,
      calibrationText,
      samples: flags.samples,
      seqLen: flags.seqLen,
      onCalibration: (samples, seqLen) => (calibration = [samples, seqLen]),
      onLinear(name, _q, done, total) {
        if (flags.json) return;
        // One bar per decoder block, over its seven linears.
        const l = Number(/layers\.(\d+)\./.exec(name)?.[1] ?? 0);
        if (l !== block) {
          bar?.stop();
          block = l;
          bar = progressBar(`${method} block ${l + 1}/${total / 7}`);
        }
        bar!.update(((done - 1) % 7) + 1, 7);
      },
    });
    const report = {
      model: flags.model,
      out: flags.out,
      format: method,
      bits: flags.bits,
      group_size: flags.groupSize,
      act_order: flags.actOrder ?? false,
      sym: flags.sym ?? false,
      calibration: calibration ? { file: flags.calibration, samples: calibration[0], seq_len: calibration[1] } : null,
      quantized_tensors: r.quantizedTensors,
      bits_per_parameter: r.bitsPerParameter,
      output_bytes: r.fileBytes,
      seconds: (performance.now() - started) / 1000,
    };
    if (flags.json) return printJson(report);
    console.log(
      formatTable([
        ['format', `${method}, ${flags.bits} bits, group ${flags.groupSize}${flags.actOrder ? ', act-order' : ''}${flags.sym ? ', sym' : ''} (${r.quantizedTensors} linear weights, AutoGPTQ layout)`],
        ...(calibration ? [['calibration', `${calibration[0]} windows of ${calibration[1]} tokens from ${flags.calibration}`] as [string, string]] : []),
        ['bits per parameter', r.bitsPerParameter.toFixed(3)],
        ['model.safetensors', formatBytes(r.fileBytes)],
        ['written to', flags.out],
        ['time', `${report.seconds.toFixed(1)} s`],
      ]),
    );
  } finally {
    (bar as ReturnType<typeof progressBar> | null)?.stop();
  }
}

/** AWQ through @lithe/awq: 4 bits with zero points, the AutoAWQ GEMM layout. */
async function runAwq(flags: Flags): Promise<void> {
  if (flags.format) throw new Error('--format applies to --method int8|int4, not awq');
  if (!flags.calibration) throw new Error('--method awq needs --calibration FILE (text to calibrate on, e.g. a few thousand lines of the kind of text the model sees)');
  if (flags.bits !== undefined && Number(flags.bits) !== 4) throw new Error(`--method awq is 4-bit (AutoAWQ's GEMM layout); drop --bits ${flags.bits}`);
  if (flags.actOrder || flags.sym || flags.damp !== 0.01) throw new Error('--act-order, --sym and --damp apply to --method gptq, not awq');
  const calibrationText = await readFile(flags.calibration, 'utf8');
  const started = performance.now();
  const bar = flags.json ? null : progressBar('awq blocks');
  let calibration: [number, number] | null = null;
  try {
    const r = await quantizeAwqDir(flags.model, flags.out, {
      method: 'awq',
      groupSize: flags.groupSize ?? 128,
      calibrationText,
      samples: flags.samples,
      seqLen: flags.seqLen,
      searchSamples: flags.searchSamples,
      duoScaling: flags.duoScaling,
      onCalibration: (samples, seqLen) => {
        calibration = [samples, seqLen];
        bar?.update(0, 1);
      },
      onBlock: (_report, done, total) => bar?.update(done, total),
    });
    bar?.stop();
    const report = {
      model: flags.model,
      out: flags.out,
      format: 'awq',
      bits: 4,
      group_size: r.groupSize,
      zero_point: true,
      calibration: calibration ? { file: flags.calibration, samples: calibration[0], seq_len: calibration[1] } : null,
      alpha: r.blocks.map((b) => b.alpha),
      quantized_tensors: r.quantizedTensors,
      bits_per_parameter: r.bitsPerParameter,
      output_bytes: r.fileBytes,
      seconds: (performance.now() - started) / 1000,
    };
    if (flags.json) return printJson(report);
    const alpha = (v: number | null) => (v === null ? '-' : v.toFixed(2));
    console.log(
      formatTable([
        ['format', `awq, 4 bits, group ${r.groupSize}, zero point (${r.quantizedTensors} linear weights, AutoAWQ GEMM layout)`],
        ...(calibration ? [['calibration', `${calibration[0]} windows of ${calibration[1]} tokens from ${flags.calibration}`] as [string, string]] : []),
        ['α per block (qkv o gate/up down)', r.blocks.map((b) => `${alpha(b.alpha.qkv)} ${alpha(b.alpha.o)} ${alpha(b.alpha.gateUp)} ${alpha(b.alpha.down)}`).join(' | ')],
        ['bits per parameter', r.bitsPerParameter.toFixed(3)],
        ['model.safetensors', formatBytes(r.fileBytes)],
        ['written to', flags.out],
        ['time', `${report.seconds.toFixed(1)} s`],
      ]),
    );
  } finally {
    bar?.stop();
  }
}
