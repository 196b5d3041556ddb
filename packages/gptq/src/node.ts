// Node-only: quantizing a model directory on disk with GPTQ or round-to-nearest.
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calibrationWindows, createPipeline, loadHFDir, safetensorsDType } from '@lithe/core';
import { nodeModelFiles, writeSafetensorsFile, type SafetensorsEntry } from '@lithe/core/node';
import { gptqTensorNames, toAutoGptq, type AutoGptqTensors } from './checkpoint.js';
import type { QuantizedLinear } from './gptq.js';
import { quantizeModel, type QuantizeModelOptions } from './quantize-model.js';

export interface QuantizeDirOptions extends QuantizeModelOptions {
  /** Calibration text (GPTQ): tokenized with the model's tokenizer and cut into windows. */
  calibrationText?: string;
  /** Windows of calibration text (default 128). */
  samples?: number;
  /** Tokens per window (default 512). */
  seqLen?: number;
  /** Called once calibration starts: the windows and their length actually used. */
  onCalibration?: (samples: number, seqLen: number) => void;
}

export interface QuantizeDirReport {
  method: 'gptq' | 'rtn';
  quantizedTensors: number;
  quantizedParameters: number;
  /** Bytes of qweight, qzeros, scales and g_idx of the quantized linears. */
  quantizedBytes: number;
  bitsPerParameter: number;
  fileBytes: number;
  /** Σ of GPTQ's per-linear losses (0 for rtn). */
  loss: number;
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * Quantizes the decoder linears of an HF model directory with GPTQ (calibrated on
 * `calibrationText`) or round-to-nearest and writes a directory in the AutoGPTQ / transformers
 * layout (checkpoint.ts): model.safetensors, config.json with `quantization_config`,
 * quantize_config.json, and every other file copied. Embeddings, norms and lm_head stay as stored.
 */
export async function quantizeModelDir(inDir: string, outDir: string, options: QuantizeDirOptions): Promise<QuantizeDirReport> {
  const method = options.method ?? 'gptq';
  const results = new Map<string, QuantizedLinear>();
  const pipeline = await createPipeline({ model: inDir, backend: 'cpu', dtype: 'f32' });
  try {
    let windows: Int32Array[] | null = null;
    if (method === 'gptq') {
      if (!options.calibrationText) throw new Error('gptq: GPTQ needs calibration text (--calibration FILE); --method rtn needs none');
      const ids = pipeline.tokenizer.encode(options.calibrationText, { addSpecialTokens: false });
      const seqLen = Math.min(options.seqLen ?? 512, ids.length);
      windows = calibrationWindows(ids, options.samples ?? 128, seqLen);
      options.onCalibration?.(windows.length, seqLen);
    }
    await quantizeModel(pipeline.model, windows, {
      ...options,
      onLinear(name, q, done, total) {
        results.set(name, q);
        options.onLinear?.(name, q, done, total);
      },
    });
  } finally {
    pipeline.dispose();
  }

  const report: QuantizeDirReport = { method, quantizedTensors: 0, quantizedParameters: 0, quantizedBytes: 0, bitsPerParameter: 0, fileBytes: 0, loss: 0 };
  const dir = await loadHFDir(nodeModelFiles(inDir));
  try {
    const entries: SafetensorsEntry[] = [];
    const fixed = (name: string, dtype: string, shape: number[], data: Uint8Array): SafetensorsEntry => ({ name, dtype, shape, data });
    for (const [name, w] of dir.weights) {
      const q = results.get(name.replace(/\.weight$/, ''));
      if (!q || !name.endsWith('.weight')) {
        entries.push({ name, dtype: safetensorsDType(w.dtype), shape: w.shape, byteLength: w.byteLength, read: () => w.file.read(name) });
        continue;
      }
      const prefix = name.replace(/\.weight$/, '');
      const t: AutoGptqTensors = toAutoGptq(q, 'gptq', prefix);
      const n = gptqTensorNames(prefix);
      const groups = q.scales.length / q.outFeatures;
      entries.push(
        fixed(n.qweight, 'I32', [(q.inFeatures * q.bits) / 32, q.outFeatures], bytesOf(t.qweight)),
        fixed(n.qzeros, 'I32', [groups, (q.outFeatures * q.bits) / 32], bytesOf(t.qzeros)),
        fixed(n.scales, 'F16', [groups, q.outFeatures], bytesOf(t.scales)),
        fixed(n.g_idx, 'I32', [q.inFeatures], bytesOf(t.gIdx)),
      );
      report.quantizedTensors++;
      report.quantizedParameters += q.outFeatures * q.inFeatures;
      report.quantizedBytes += t.qweight.byteLength + t.qzeros.byteLength + t.scales.byteLength + t.gIdx.byteLength;
      report.loss += q.loss;
    }
    await mkdir(outDir, { recursive: true });
    report.fileBytes = await writeSafetensorsFile(join(outDir, 'model.safetensors'), entries, { format: 'pt' });
  } finally {
    await dir.close();
  }

  const G = options.groupSize;
  const quantizeConfig = {
    bits: options.bits,
    group_size: G,
    damp_percent: options.damp ?? 0.01,
    desc_act: options.actOrder ?? false,
    static_groups: false,
    sym: options.sym ?? false,
    // Every linear of a block is calibrated on the block's full-precision path in one pass.
    true_sequential: false,
    model_file_base_name: 'model',
    quant_method: 'gptq',
    checkpoint_format: 'gptq',
    meta: { quantizer: `lithe:${method}` },
  };
  const config = JSON.parse(await readFile(join(inDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(join(outDir, 'config.json'), `${JSON.stringify({ ...config, quantization_config: quantizeConfig }, null, 2)}\n`);
  await writeFile(join(outDir, 'quantize_config.json'), `${JSON.stringify(quantizeConfig, null, 2)}\n`);
  for (const entry of await readdir(inDir, { withFileTypes: true })) {
    const skip = ['config.json', 'quantize_config.json', 'model.safetensors.index.json'].includes(entry.name) || entry.name.endsWith('.safetensors');
    if (entry.isFile() && !skip) await copyFile(join(inDir, entry.name), join(outDir, entry.name));
  }
  report.bitsPerParameter = report.quantizedParameters ? (report.quantizedBytes * 8) / report.quantizedParameters : 0;
  return report;
}
