import { Command, Option } from 'commander';
import { byteSize, kvBytesPerToken, numel, openModel, parameterCount, parseConfig, type LlamaConfig } from '@lithe/core';
import { readLckvConfig } from '@lithe/lckv';
import { formatBytes, formatCount, formatTable, printJson } from '../format.js';
import { integerAtLeast } from '../options.js';

interface Flags {
  model: string;
  context?: number;
  batch: number;
  kvDtype: 'f16' | 'f32';
  json?: boolean;
}

// LlamaModel's default prefill chunk: activation buffers are sized for this many tokens at most.
const PREFILL_CHUNK = 256;

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('describe a model and the memory it needs, from its config and tensor headers (no weights are loaded)')
    .requiredOption('-m, --model <dir|file.gguf>', 'Hugging Face model directory or GGUF file')
    .option('-c, --context <n>', 'tokens per sequence for the memory estimate (default: the model\'s context length)', integerAtLeast('--context', 1))
    .option('-b, --batch <n>', 'sequences held at once for the memory estimate', integerAtLeast('--batch', 1), 1)
    .addOption(new Option('--kv-dtype <dtype>', 'element type of the KV cache for the memory estimate').choices(['f16', 'f32']).default('f16'))
    .option('--json', 'print one JSON object')
    .action(run);
}

/**
 * f32 activation buffers of one forward step, which the sequences of a batch share (their rows are
 * stacked, at most a prefill chunk of them): hidden states, q/k/v, attention output and MLP
 * intermediates, plus one row of logits per sequence. Kernel scratch space and runtime overhead are
 * not included.
 */
export function activationBytes(c: LlamaConfig, context: number, batch: number): number {
  const q = c.nHeads * c.headDim;
  const kv = c.nKVHeads * c.headDim;
  const perRow = 3 * c.hiddenSize + 2 * q + 2 * kv + 2 * c.intermediateSize;
  return 4 * (Math.min(PREFILL_CHUNK, context * batch) * perRow + batch * c.vocabSize);
}

/**
 * The linear weights' format: what a quantized directory's config.json declares (the tensors are
 * then stored as u8, which alone would say nothing), else the stored dtype of a layer's gate_proj.
 */
export function weightFormat(config: Record<string, unknown>, gateDtype: string | undefined): { name: string; storedAs?: string; what?: string } {
  const q = config.quantization_config as Record<string, unknown> | undefined;
  if (q?.quant_method === 'bitsandbytes') return { name: String(q.bnb_4bit_quant_type ?? 'nf4'), storedAs: 'u8', what: 'codes and quantized scales' };
  if (q?.quant_method === 'lithe' && typeof q.format === 'string') return { name: q.format, storedAs: 'u8', what: 'blocks' };
  return { name: gateDtype ?? 'unknown' };
}

async function run(flags: Flags): Promise<void> {
  const dir = await openModel(flags.model);
  try {
    const parse = (raw: Record<string, unknown>) => parseConfig(raw, dir.generationConfig);
    // An LCKV model's KV bytes count only the layers that compute keys and values.
    const c = dir.config.model_type === 'lckv-llama' ? readLckvConfig(dir.config, parse).config : parse(dir.config);
    const tensors: Record<string, { count: number; bytes: number }> = {};
    for (const name of dir.weights.names()) {
      const { dtype, shape } = dir.weights.info(name)!;
      const t = (tensors[dtype] ??= { count: 0, bytes: 0 });
      t.count++;
      t.bytes += byteSize(dtype, numel(shape));
    }
    const weightBytes = Object.values(tensors).reduce((sum, t) => sum + t.bytes, 0);
    const format = weightFormat(dir.config, dir.weights.info('model.layers.0.mlp.gate_proj.weight')?.dtype);
    const context = flags.context ?? c.maxPositionEmbeddings;
    if (context > c.maxPositionEmbeddings) process.stderr.write(`warning: --context ${context} exceeds the model's context length (${c.maxPositionEmbeddings})\n`);
    const kvElementBytes = flags.kvDtype === 'f32' ? 4 : 2;
    const kvBytes = kvBytesPerToken(c, kvElementBytes) * context * flags.batch;
    const actBytes = activationBytes(c, context, flags.batch);
    const report = {
      model: flags.model,
      model_type: c.modelType,
      architectures: (dir.config.architectures as string[] | undefined) ?? [],
      layers: c.nLayers,
      heads: c.nHeads,
      kv_heads: c.nKVHeads,
      head_dim: c.headDim,
      hidden_size: c.hiddenSize,
      intermediate_size: c.intermediateSize,
      vocab_size: c.vocabSize,
      parameters: parameterCount(c),
      weight_format: format.name,
      tensors,
      weight_bytes: weightBytes,
      context_length: c.maxPositionEmbeddings,
      rope_theta: c.ropeTheta,
      rope_scaling: c.ropeScaling,
      sliding_window: c.slidingWindow,
      tied_embeddings: c.tieWordEmbeddings,
      qkv_bias: c.qkvBias,
      memory: {
        context,
        batch: flags.batch,
        weight_bytes: weightBytes,
        kv_dtype: flags.kvDtype,
        kv_bytes_per_token: kvBytesPerToken(c, kvElementBytes),
        kv_bytes: kvBytes,
        activation_bytes: actBytes,
        total_bytes: weightBytes + kvBytes + actBytes,
      },
    };
    if (flags.json) return printJson(report);

    const m = report.memory;
    const rope = c.ropeScaling ? `theta ${c.ropeTheta}, ${c.ropeScaling.type} scaling x${c.ropeScaling.factor}` : `theta ${c.ropeTheta}`;
    console.log(
      formatTable([
        ['architecture', `${c.modelType} (${report.architectures.join(', ') || 'no architectures listed'})`],
        ['layers', String(c.nLayers)],
        ['attention heads', `${c.nHeads} (${c.nKVHeads} KV heads, head dim ${c.headDim})`],
        ['hidden size', String(c.hiddenSize)],
        ['intermediate size', String(c.intermediateSize)],
        ['vocabulary', String(c.vocabSize)],
        ['parameters', `${formatCount(report.parameters)} (${report.parameters})`],
        ['weight format', format.name],
        ...Object.entries(tensors).map(([dtype, t]): [string, string] => [`tensors ${dtype}`, `${t.count} (${formatBytes(t.bytes)})${format.storedAs === dtype ? `: ${format.name} ${format.what}` : ''}`]),
        ['weights', formatBytes(weightBytes)],
        ['context length', String(c.maxPositionEmbeddings)],
        ['rope', rope],
        ['sliding window', c.slidingWindow === null ? 'none' : String(c.slidingWindow)],
        ['tied embeddings', c.tieWordEmbeddings ? 'yes' : 'no'],
        ['', ''],
        [`memory for ${m.context} tokens x ${m.batch}`, ''],
        ['  weights', formatBytes(m.weight_bytes)],
        [`  KV cache (${flags.kvDtype})`, `${formatBytes(m.kv_bytes)} (${formatBytes(m.kv_bytes_per_token)} per token)`],
        ['  activations', `${formatBytes(m.activation_bytes)} (f32 buffers of a ${Math.min(PREFILL_CHUNK, context * m.batch)}-row step + last-row logits)`],
        ['  total', formatBytes(m.total_bytes)],
      ]),
    );
  } finally {
    await dir.close();
  }
}
