// Node-only: quantizing a model directory on disk with AWQ or round-to-nearest, written in
// AutoAWQ's GEMM layout.
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calibrationWindows, createPipeline, loadHFDir, safetensorsDType } from '@lithe/core';
import { nodeModelFiles, writeSafetensorsFile, type SafetensorsEntry } from '@lithe/core/node';
import { toAutoAwq } from './checkpoint.js';
import type { AwqQuantized } from './quantizer.js';
import { awqQuantizeModel, type AwqBlockReport, type AwqOptions } from './quantize-model.js';

export interface QuantizeDirOptions extends AwqOptions {
  /** Calibration text (AWQ): tokenized with the model's tokenizer and cut into windows. */
  calibrationText?: string;
  /** Windows of calibration text (default 128). */
  samples?: number;
  /** Tokens per window (default 512). */
  seqLen?: number;
  /** Called once calibration starts: the windows and their length actually used. */
  onCalibration?: (samples: number, seqLen: number) => void;
}

export interface QuantizeDirReport {
  method: 'awq' | 'rtn';
  groupSize: number;
  quantizedTensors: number;
  quantizedParameters: number;
  /** Bytes of qweight, qzeros and scales of the quantized linears. */
  quantizedBytes: number;
  bitsPerParameter: number;
  fileBytes: number;
  /** What the search chose, block by block (empty for rtn). */
  blocks: AwqBlockReport[];
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** [out, groups] → [groups, out] (AutoAWQ's orientation for zeros and scales). */
function transpose<T extends Uint8Array | Uint16Array>(a: T, rows: number, cols: number): T {
  const out = new (a.constructor as new (n: number) => T)(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

/** The config.json `quantization_config` AutoAWQ writes for a GEMM checkpoint. */
export function awqQuantizationConfig(groupSize: number, method: 'awq' | 'rtn'): Record<string, unknown> {
  return { quant_method: 'awq', bits: 4, group_size: groupSize, zero_point: true, version: 'gemm', modules_to_not_convert: null, meta: { quantizer: `lithe:${method}` } };
}

/**
 * Quantizes the decoder linears of an HF model directory with AWQ (calibrated on
 * `calibrationText`) or round-to-nearest and writes a directory in AutoAWQ's GEMM layout
 * (checkpoint.ts): model.safetensors, config.json with `quantization_config`, and every other file
 * copied. The norms and biases AWQ folded its scales into are written as the model now holds them
 * (f32); embeddings, the final norm and lm_head stay as stored.
 */
export async function quantizeModelDir(inDir: string, outDir: string, options: QuantizeDirOptions): Promise<QuantizeDirReport> {
  const method = options.method ?? 'awq';
  const groupSize = options.groupSize ?? 128;
  const results = new Map<string, AwqQuantized>();
  /** Tensors whose values changed in memory: folded norms and biases. */
  const changed = new Map<string, Float32Array>();
  let blocks: AwqBlockReport[] = [];
  const pipeline = await createPipeline({ model: inDir, backend: 'cpu', dtype: 'f32' });
  try {
    let windows: Int32Array[] | null = null;
    if (method === 'awq') {
      if (!options.calibrationText) throw new Error('awq: AWQ needs calibration text (--calibration FILE); --method rtn needs none');
      const ids = pipeline.tokenizer.encode(options.calibrationText, { addSpecialTokens: false });
      const seqLen = Math.min(options.seqLen ?? 512, ids.length);
      windows = calibrationWindows(ids, options.samples ?? 128, seqLen);
      options.onCalibration?.(windows.length, seqLen);
    }
    blocks = await awqQuantizeModel(pipeline.model, windows, {
      ...options,
      onLinear(name, q, bias) {
        results.set(name, q);
        if (bias) changed.set(`${name}.bias`, bias);
        options.onLinear?.(name, q, bias);
      },
    });
    pipeline.model.layers.forEach((layer, l) => {
      changed.set(`model.layers.${l}.input_layernorm.weight`, (layer.attnNorm.handle as Float32Array).slice(0, layer.attnNorm.size));
      changed.set(`model.layers.${l}.post_attention_layernorm.weight`, (layer.mlpNorm.handle as Float32Array).slice(0, layer.mlpNorm.size));
    });
  } finally {
    pipeline.dispose();
  }

  const report: QuantizeDirReport = { method, groupSize, quantizedTensors: 0, quantizedParameters: 0, quantizedBytes: 0, bitsPerParameter: 0, fileBytes: 0, blocks };
  const dir = await loadHFDir(nodeModelFiles(inDir));
  try {
    const entries: SafetensorsEntry[] = [];
    const fixed = (name: string, dtype: string, shape: number[], data: Uint8Array): SafetensorsEntry => ({ name, dtype, shape, data });
    for (const [name, w] of dir.weights) {
      const q = name.endsWith('.weight') ? results.get(name.replace(/\.weight$/, '')) : undefined;
      const values = changed.get(name);
      if (values) {
        entries.push(fixed(name, 'F32', w.shape, bytesOf(values)));
        continue;
      }
      if (!q) {
        entries.push({ name, dtype: safetensorsDType(w.dtype), shape: w.shape, byteLength: w.byteLength, read: () => w.file.read(name) });
        continue;
      }
      const prefix = name.replace(/\.weight$/, '');
      const { outFeatures: outF, inFeatures: inF } = q;
      const groups = inF / q.groupSize;
      const t = toAutoAwq(q.codes, transpose(q.zeros, outF, groups), transpose(q.scales, outF, groups), outF, inF);
      entries.push(
        fixed(`${prefix}.qweight`, 'I32', [inF, outF / 8], bytesOf(t.qweight)),
        fixed(`${prefix}.qzeros`, 'I32', [groups, outF / 8], bytesOf(t.qzeros)),
        fixed(`${prefix}.scales`, 'F16', [groups, outF], bytesOf(t.scales)),
      );
      report.quantizedTensors++;
      report.quantizedParameters += outF * inF;
      report.quantizedBytes += t.qweight.byteLength + t.qzeros.byteLength + t.scales.byteLength;
    }
    await mkdir(outDir, { recursive: true });
    report.fileBytes = await writeSafetensorsFile(join(outDir, 'model.safetensors'), entries, { format: 'pt' });
  } finally {
    await dir.close();
  }

  const config = JSON.parse(await readFile(join(inDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(join(outDir, 'config.json'), `${JSON.stringify({ ...config, quantization_config: awqQuantizationConfig(groupSize, method) }, null, 2)}\n`);
  for (const entry of await readdir(inDir, { withFileTypes: true })) {
    const skip = ['config.json', 'quantize_config.json', 'quant_config.json', 'model.safetensors.index.json'].includes(entry.name) || entry.name.endsWith('.safetensors');
    if (entry.isFile() && !skip) await copyFile(join(inDir, entry.name), join(outDir, entry.name));
  }
  report.bitsPerParameter = report.quantizedParameters ? (report.quantizedBytes * 8) / report.quantizedParameters : 0;
  return report;
}
