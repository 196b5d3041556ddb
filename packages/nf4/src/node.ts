// Node-only: quantizing a model directory on disk, and opening one.
import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeHalfInto, loadHFDir, safetensorsDType, type WeightRole } from '@lithe/core';
import { nodeModelFiles, writeSafetensorsFile, type SafetensorsEntry } from '@lithe/core/node';
import { quantizedEntries } from './checkpoint.js';
import type { ComputeDType } from './four-bit-weights.js';
import { isQuantizedWeight, resolveNf4Options, type Nf4Options } from './plugin.js';
import { quantize4bit, quantizedBytes } from './quantize.js';

export interface QuantizeDirReport {
  /** Weights stored 4-bit. */
  quantizedTensors: number;
  /** Their parameters, and the bytes their 4-bit form takes (codes, absmax, offsets). */
  quantizedParameters: number;
  quantizedBytes: number;
  /** quantizedBytes · 8 / quantizedParameters. */
  bitsPerParameter: number;
  /** Size of the written model.safetensors. */
  fileBytes: number;
}

const LINEAR = /\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.weight$/;
const TORCH_DTYPE: Record<string, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };
const COMPUTE_DTYPE: Record<ComputeDType, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };

function roleOf(name: string): WeightRole | null {
  if (name === 'lm_head.weight') return 'lm_head';
  return LINEAR.test(name) ? 'linear' : null;
}

/**
 * Quantizes the linear weights of an HF model directory to NF4/FP4 and writes a directory in the
 * bitsandbytes layout (see checkpoint.ts): config.json with `quantization_config`, one
 * model.safetensors, and every other file (tokenizer, generation config) copied. Reads one
 * full-precision tensor at a time; keeps only the 4-bit results in memory until they are written.
 */
export async function quantizeModelDir(inDir: string, outDir: string, options: Nf4Options = {}): Promise<QuantizeDirReport> {
  const o = resolveNf4Options(options);
  const dir = await loadHFDir(nodeModelFiles(inDir));
  const entries: SafetensorsEntry[] = [];
  const report: QuantizeDirReport = { quantizedTensors: 0, quantizedParameters: 0, quantizedBytes: 0, bitsPerParameter: 0, fileBytes: 0 };
  try {
    for (const [name, w] of dir.weights) {
      const role = roleOf(name);
      const float = w.dtype === 'f32' || w.dtype === 'f16' || w.dtype === 'bf16';
      if (!role || !float || !isQuantizedWeight({ name, role }, o)) {
        entries.push({ name, dtype: safetensorsDType(w.dtype), shape: w.shape, byteLength: w.byteLength, read: () => w.file.read(name) });
        continue;
      }
      const raw = await w.file.read(name);
      const n = w.shape.reduce((a, b) => a * b, 1);
      let values: Float32Array;
      if (w.dtype === 'f32') values = new Float32Array(raw.slice().buffer, 0, n);
      else {
        values = new Float32Array(n);
        decodeHalfInto(new Uint16Array(raw.slice().buffer, 0, n), w.dtype as 'f16' | 'bf16', values);
      }
      const q = quantize4bit(values, w.shape, { type: o.type, blockSize: o.blockSize, doubleQuant: o.doubleQuant });
      entries.push(...quantizedEntries(name, q, TORCH_DTYPE[w.dtype]));
      report.quantizedTensors++;
      report.quantizedParameters += n;
      report.quantizedBytes += quantizedBytes(q);
    }
    await mkdir(outDir, { recursive: true });
    report.fileBytes = await writeSafetensorsFile(join(outDir, 'model.safetensors'), entries, { format: 'pt' });
  } finally {
    await dir.close();
  }

  const config = {
    ...dir.config,
    quantization_config: {
      quant_method: 'bitsandbytes',
      _load_in_4bit: true,
      _load_in_8bit: false,
      load_in_4bit: true,
      load_in_8bit: false,
      bnb_4bit_quant_type: o.type,
      bnb_4bit_use_double_quant: o.doubleQuant,
      bnb_4bit_compute_dtype: COMPUTE_DTYPE[o.computeDType],
      bnb_4bit_quant_storage: 'uint8',
      llm_int8_skip_modules: o.skipModules,
      block_size: o.blockSize,
    },
  };
  await writeFile(join(outDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  for (const entry of await readdir(inDir, { withFileTypes: true })) {
    const skip = entry.name === 'config.json' || entry.name.endsWith('.safetensors') || entry.name === 'model.safetensors.index.json';
    if (entry.isFile() && !skip) await copyFile(join(inDir, entry.name), join(outDir, entry.name));
  }
  report.bitsPerParameter = report.quantizedParameters ? (report.quantizedBytes * 8) / report.quantizedParameters : 0;
  return report;
}
