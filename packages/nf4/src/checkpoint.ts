/**
 * 4-bit weights in safetensors, in the layout bitsandbytes + transformers save (so their NF4/FP4
 * checkpoints load here, and ours load there). For a quantized weight W (e.g.
 * `model.layers.0.self_attn.q_proj.weight`):
 *
 * | tensor | dtype, shape | what |
 * |---|---|---|
 * | `W` | U8 [ceil(n/2), 1] | packed codes, element 2j in the high nibble |
 * | `W.absmax` | F32 [blocks], or U8 [blocks] when double-quantized | per-block absmax, or its 8-bit codes |
 * | `W.quant_map` | F32 [16] | the codebook |
 * | `W.nested_absmax` | F32 [ceil(blocks/256)] | double quantization: scale of each block of absmax codes |
 * | `W.nested_quant_map` | F32 [256] | double quantization: the dynamic map |
 * | `W.quant_state.bitsandbytes__nf4` (or `__fp4`) | U8 [bytes] | UTF-8 JSON: quant_type, blocksize, dtype, shape, nested_blocksize, nested_dtype, nested_offset |
 *
 * config.json carries a `quantization_config` with `quant_method: "bitsandbytes"`. Browser-safe.
 */
import type { DType } from '@lithe/core';
import type { FourBitType } from './codebooks.js';
import type { QuantizedTensor } from './quantize.js';

export interface StoredTensor {
  name: string;
  /** Safetensors dtype name: 'U8', 'F32', ... */
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

export const QUANT_STATE_PREFIX = '.quant_state.bitsandbytes__';

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Name of the JSON state tensor of weight `name`. */
export const quantStateName = (name: string, type: FourBitType) => `${name}${QUANT_STATE_PREFIX}${type}`;

/** The safetensors entries of one quantized weight (`dtype` names the original float dtype, e.g. 'float16'). */
export function quantizedEntries(name: string, q: QuantizedTensor, dtype = 'float32'): StoredTensor[] {
  const state: Record<string, unknown> = { quant_type: q.type, blocksize: q.blockSize, dtype, shape: q.shape };
  const out: StoredTensor[] = [
    { name, dtype: 'U8', shape: [q.codes.length, 1], data: q.codes },
    q.nested
      ? { name: `${name}.absmax`, dtype: 'U8', shape: [q.nested.codes.length], data: q.nested.codes }
      : { name: `${name}.absmax`, dtype: 'F32', shape: [q.absmax!.length], data: bytesOf(q.absmax!) },
    { name: `${name}.quant_map`, dtype: 'F32', shape: [16], data: bytesOf(q.codebook) },
  ];
  if (q.nested) {
    out.push(
      { name: `${name}.nested_absmax`, dtype: 'F32', shape: [q.nested.scale.length], data: bytesOf(q.nested.scale) },
      { name: `${name}.nested_quant_map`, dtype: 'F32', shape: [256], data: bytesOf(q.nested.map) },
    );
    Object.assign(state, { nested_blocksize: q.nested.blockSize, nested_dtype: 'float32', nested_offset: q.nested.offset });
  }
  const json = new TextEncoder().encode(JSON.stringify(state));
  out.push({ name: quantStateName(name, q.type), dtype: 'U8', shape: [json.length], data: json });
  return out;
}

/** Weight names in a safetensors file that are stored 4-bit (they have a quant_state tensor). */
export function quantizedWeightNames(tensors: ReadonlyMap<string, unknown>): Map<string, FourBitType> {
  const out = new Map<string, FourBitType>();
  for (const name of tensors.keys()) {
    const i = name.indexOf(QUANT_STATE_PREFIX);
    if (i < 0) continue;
    const type = name.slice(i + QUANT_STATE_PREFIX.length);
    if (type !== 'nf4' && type !== 'fp4') throw new Error(`nf4: '${name}' has quant type '${type}'; supported: nf4, fp4`);
    out.set(name.slice(0, i), type);
  }
  return out;
}

/** Reads tensors by name: a loader's WeightSource, or a safetensors file through `fileReader`. */
export interface TensorReader {
  info(name: string): { dtype: DType } | undefined;
  read(name: string): Promise<Uint8Array>;
}

export const fileReader = (file: { tensors: ReadonlyMap<string, { dtype: DType }>; read(name: string): Promise<Uint8Array> }): TensorReader => ({
  info: (name) => file.tensors.get(name),
  read: (name) => file.read(name),
});

export interface QuantState {
  quant_type: FourBitType;
  blocksize: number;
  dtype: string;
  shape: number[];
  nested_blocksize?: number;
  nested_offset?: number;
}

export async function readQuantState(file: TensorReader, name: string, type: FourBitType): Promise<QuantState> {
  const raw = await file.read(quantStateName(name, type));
  const state = JSON.parse(new TextDecoder().decode(raw)) as QuantState;
  if (!Array.isArray(state.shape) || typeof state.blocksize !== 'number') throw new Error(`nf4: '${quantStateName(name, type)}' lacks shape or blocksize`);
  return state;
}

/** Reads a quantized weight back (the arrays are fresh copies the caller may keep). */
export async function readQuantized(file: TensorReader, name: string, type: FourBitType): Promise<QuantizedTensor> {
  const state = await readQuantState(file, name, type);
  const t = (suffix: string) => {
    const full = suffix ? `${name}.${suffix}` : name;
    const info = file.info(full);
    if (!info) throw new Error(`nf4: '${name}' is stored 4-bit but '${full}' is missing`);
    return { name: full, dtype: info.dtype };
  };
  const read = async (suffix: string, dtype: 'u8' | 'f32') => {
    const info = t(suffix);
    if (info.dtype !== dtype) throw new Error(`nf4: '${info.name}' is ${info.dtype}, expected ${dtype}`);
    const bytes = (await file.read(info.name)).slice();
    return dtype === 'u8' ? bytes : new Float32Array(bytes.buffer, 0, bytes.length / 4);
  };
  const n = state.shape.reduce((a, b) => a * b, 1);
  const codes = (await read('', 'u8')) as Uint8Array;
  if (codes.length !== Math.ceil(n / 2)) throw new Error(`nf4: '${name}' has ${codes.length} code bytes for shape [${state.shape.join(', ')}]`);
  const codebook = (await read('quant_map', 'f32')) as Float32Array;
  const nestedStored = t('absmax').dtype === 'u8';
  const q: QuantizedTensor = { type, shape: state.shape, blockSize: state.blocksize, codes, codebook, absmax: null, nested: null };
  if (!nestedStored) q.absmax = (await read('absmax', 'f32')) as Float32Array;
  else {
    q.nested = {
      codes: (await read('absmax', 'u8')) as Uint8Array,
      scale: (await read('nested_absmax', 'f32')) as Float32Array,
      map: (await read('nested_quant_map', 'f32')) as Float32Array,
      blockSize: state.nested_blocksize ?? 256,
      offset: Math.fround(state.nested_offset ?? 0),
    };
  }
  const blocks = Math.ceil(n / q.blockSize);
  const stored = q.absmax?.length ?? q.nested!.codes.length;
  if (stored !== blocks || codebook.length !== 16) throw new Error(`nf4: '${name}' has ${stored} absmax values for ${blocks} blocks (or a codebook of ${codebook.length})`);
  return q;
}
