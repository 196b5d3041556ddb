/**
 * Block-quantized weights in an HF-style directory: each quantized matrix is a safetensors U8
 * tensor [out, rowBytes] (the block bytes of each row, llama.cpp's layout) whose format is recorded
 * in the file's `__metadata__` as `"lithe.format.<tensor name>": "q8_0"`; config.json carries
 * `quantization_config: { quant_method: "lithe", format }`. Embeddings and norms stay float.
 * Browser-safe: the writer streams to a sink.
 */
import type { HFModelDir } from '../io/hf-dir.js';
import { parseConfig } from '../model/config.js';
import type { WeightSource } from '../model/weights.js';
import { llamaTensorList, toF32 } from '../io/gguf-convert.js';
import { BLOCK_FORMATS, blockRowBytes, isBlockFormat, type BlockFormat } from './formats.js';
import { quantize } from './quantize.js';

export const FORMAT_KEY_PREFIX = 'lithe.format.';
export const QUANT_METHOD = 'lithe';

/** Serves recorded U8 tensors as their block dtype and logical [out, in] shape. */
export function withRecordedFormats(dir: HFModelDir, source: WeightSource): WeightSource {
  return {
    totalBytes: source.totalBytes,
    names: () => source.names(),
    read: (name) => source.read(name),
    info(name) {
      const entry = dir.weights.get(name);
      const format = entry?.file.metadata[FORMAT_KEY_PREFIX + name];
      if (!entry || format === undefined) return source.info(name);
      const where = `${dir.location}: tensor '${name}'`;
      if (!isBlockFormat(format)) throw new Error(`${where} is recorded as format '${format}', which lithe does not know (known: ${Object.keys(BLOCK_FORMATS).join(', ')})`);
      if (entry.dtype !== 'u8' || entry.shape.length !== 2) throw new Error(`${where} is recorded as ${format} but is stored as ${entry.dtype}[${entry.shape.join(', ')}], not as U8 [out, row bytes]`);
      const { blockSize, blockBytes } = BLOCK_FORMATS[format];
      const [rows, rowBytes] = entry.shape;
      if (rowBytes % blockBytes !== 0) throw new Error(`${where}: rows of ${rowBytes} bytes are not whole ${format} blocks of ${blockBytes} bytes`);
      return { dtype: format, shape: [rows, (rowBytes / blockBytes) * blockSize] };
    },
  };
}

export interface QuantizeSource {
  config: Record<string, unknown>;
  weights: WeightSource;
}

export interface QuantizedModel {
  /** config.json with quantization_config added. */
  config: Record<string, unknown>;
  /** Tensors that were quantized. */
  quantized: string[];
  /** Bytes of the safetensors file. */
  bytes: number;
  /** Streams model.safetensors to the sink. */
  write(sink: (chunk: Uint8Array) => Promise<void> | void, onProgress?: (done: number, total: number) => void): Promise<void>;
}

const SAFETENSORS_NAMES: Record<string, string> = { f32: 'F32', f16: 'F16', bf16: 'BF16', u8: 'U8', i8: 'I8', i32: 'I32' };

/**
 * Plans a quantized model.safetensors: every linear matrix (q, k, v, o, gate, up, down and an untied
 * lm_head) whose rows fill whole blocks becomes `format`; everything else is copied as it is.
 */
export function planQuantizedModel(src: QuantizeSource, format: BlockFormat): QuantizedModel {
  const c = parseConfig(src.config);
  const { blockSize, blockBytes } = BLOCK_FORMATS[format];
  const entries: { name: string; quantize: boolean; dtype: string; shape: number[]; bytes: number }[] = [];
  for (const t of llamaTensorList(c)) {
    const info = src.weights.info(t.name);
    if (!info) throw new Error(`quantize: tensor '${t.name}' is missing from the model files`);
    const linear = t.shape.length === 2 && t.name !== 'model.embed_tokens.weight';
    if (linear && t.shape[1] % blockSize === 0) {
      const rowBytes = (t.shape[1] / blockSize) * blockBytes;
      entries.push({ name: t.name, quantize: true, dtype: 'U8', shape: [t.shape[0], rowBytes], bytes: t.shape[0] * rowBytes });
    } else {
      const dtype = SAFETENSORS_NAMES[info.dtype];
      if (!dtype) throw new Error(`quantize: tensor '${t.name}' has dtype ${info.dtype}; quantize a float model`);
      const n = t.shape.reduce((a, b) => a * b, 1);
      entries.push({ name: t.name, quantize: false, dtype, shape: t.shape, bytes: n * (dtype === 'F32' ? 4 : 2) });
    }
  }
  const header: Record<string, unknown> = {};
  const metadata: Record<string, string> = { format: 'pt' };
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes] };
    if (e.quantize) metadata[FORMAT_KEY_PREFIX + e.name] = format;
    offset += e.bytes;
  }
  let json = JSON.stringify({ __metadata__: metadata, ...header });
  json += ' '.repeat((8 - (new TextEncoder().encode(json).length % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const config = { ...src.config, quantization_config: { quant_method: QUANT_METHOD, format, group_size: blockSize } };

  return {
    config,
    quantized: entries.filter((e) => e.quantize).map((e) => e.name),
    bytes: 8 + headerBytes.length + offset,
    async write(sink, onProgress) {
      const prefix = new Uint8Array(8);
      new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
      await sink(prefix);
      await sink(headerBytes);
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i];
        const info = src.weights.info(e.name)!;
        const raw = await src.weights.read(e.name);
        if (!e.quantize) await sink(raw);
        else if (info.dtype === format) await sink(raw);
        else {
          const [rows, cols] = info.shape;
          blockRowBytes(format, cols, `quantize '${e.name}'`);
          await sink(quantize(format, toF32(raw, info.dtype, rows * cols)));
        }
        onProgress?.(i + 1, entries.length);
      }
    },
  };
}
