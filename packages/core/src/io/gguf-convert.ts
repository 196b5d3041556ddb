/**
 * HF-layout weights (a model directory, possibly lithe-quantized) -> a GGUF file llama.cpp loads:
 * `<arch>.*` hyperparameters, tokenizer.ggml.* from tokenizer.json, the chat template, and tensors
 * in F32 / F16 / Q8_0 / Q4_0 with q/k rows permuted the way llama.cpp's converter permutes them.
 * Norms and biases stay F32, as llama.cpp writes them. Browser-safe.
 */
import { parseConfig, type LlamaConfig } from '../model/config.js';
import type { WeightSource } from '../model/weights.js';
import { dequantize } from '../quant/dequantize.js';
import { isBlockFormat } from '../quant/formats.js';
import { quantize } from '../quant/quantize.js';
import { decodeHalfInto, f32ToF16 } from '../tensor/half.js';
import type { DType } from '../tensor/dtype.js';
import { pickChatTemplate } from './chat-template.js';
import { GGML_TYPES, GGUFValueType, ggmlTypeOf } from './gguf.js';
import { ggufTensorName, permuteQKRows } from './gguf-model.js';
import { vocabularyFromTokenizerJson } from './gguf-tokenizer.js';
import { GGUFWriter } from './gguf-writer.js';

export type GGUFOutType = 'f32' | 'f16' | 'q8_0' | 'q4_0';
export const GGUF_OUT_TYPES: readonly GGUFOutType[] = ['f32', 'f16', 'q8_0', 'q4_0'];

// llama.cpp's LLAMA_FTYPE values for general.file_type.
const FILE_TYPES: Record<GGUFOutType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7 };

export interface ConvertSource {
  name?: string;
  config: Record<string, unknown>;
  weights: WeightSource;
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown> | null;
}

/** HF tensor names and shapes the Llama loader reads, in file order. */
export function llamaTensorList(c: LlamaConfig): { name: string; shape: number[] }[] {
  const q = c.nHeads * c.headDim;
  const kv = c.nKVHeads * c.headDim;
  const out = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, c.hiddenSize] }];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}.`;
    out.push({ name: `${p}input_layernorm.weight`, shape: [c.hiddenSize] });
    out.push({ name: `${p}self_attn.q_proj.weight`, shape: [q, c.hiddenSize] }, { name: `${p}self_attn.k_proj.weight`, shape: [kv, c.hiddenSize] }, { name: `${p}self_attn.v_proj.weight`, shape: [kv, c.hiddenSize] });
    if (c.qkvBias) out.push({ name: `${p}self_attn.q_proj.bias`, shape: [q] }, { name: `${p}self_attn.k_proj.bias`, shape: [kv] }, { name: `${p}self_attn.v_proj.bias`, shape: [kv] });
    out.push({ name: `${p}self_attn.o_proj.weight`, shape: [c.hiddenSize, q] }, { name: `${p}post_attention_layernorm.weight`, shape: [c.hiddenSize] });
    out.push({ name: `${p}mlp.gate_proj.weight`, shape: [c.intermediateSize, c.hiddenSize] }, { name: `${p}mlp.up_proj.weight`, shape: [c.intermediateSize, c.hiddenSize] }, { name: `${p}mlp.down_proj.weight`, shape: [c.hiddenSize, c.intermediateSize] });
  }
  out.push({ name: 'model.norm.weight', shape: [c.hiddenSize] });
  if (!c.tieWordEmbeddings) out.push({ name: 'lm_head.weight', shape: [c.vocabSize, c.hiddenSize] });
  return out;
}

/** A tensor's bytes as f32 values, whatever its stored dtype. */
export function toF32(bytes: Uint8Array, dtype: DType, n: number): Float32Array {
  if (dtype === 'f32') return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + n * 4));
  if (dtype === 'f16' || dtype === 'bf16') {
    const out = new Float32Array(n);
    const src = bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, n) : new Uint16Array(bytes.slice().buffer);
    decodeHalfInto(src, dtype as 'f16' | 'bf16', out);
    return out;
  }
  if (isBlockFormat(dtype)) return dequantize(dtype, bytes);
  throw new Error(`cannot convert a tensor of dtype ${dtype} to f32`);
}

/** Builds the writer (metadata and tensor list) for a model; `write` then streams it. */
export function ggufWriterFor(src: ConvertSource, type: GGUFOutType): { writer: GGUFWriter; config: LlamaConfig; hfNames: string[] } {
  const c = parseConfig(src.config);
  const arch = c.modelType === 'qwen2' ? 'qwen2' : 'llama';
  if (c.ropeScaling?.type === 'llama3') throw new Error('convert: Llama 3.1 RoPE scaling is not supported in GGUF output yet');
  const w = new GGUFWriter();
  w.string('general.architecture', arch);
  w.string('general.name', src.name ?? 'model');
  w.u32('general.file_type', FILE_TYPES[type]);
  if (type === 'q8_0' || type === 'q4_0') w.u32('general.quantization_version', 2);
  w.u32(`${arch}.vocab_size`, c.vocabSize);
  w.u32(`${arch}.context_length`, c.maxPositionEmbeddings);
  w.u32(`${arch}.embedding_length`, c.hiddenSize);
  w.u32(`${arch}.block_count`, c.nLayers);
  w.u32(`${arch}.feed_forward_length`, c.intermediateSize);
  w.u32(`${arch}.rope.dimension_count`, c.headDim);
  w.u32(`${arch}.attention.head_count`, c.nHeads);
  w.u32(`${arch}.attention.head_count_kv`, c.nKVHeads);
  if (c.headDim !== c.hiddenSize / c.nHeads) {
    w.u32(`${arch}.attention.key_length`, c.headDim);
    w.u32(`${arch}.attention.value_length`, c.headDim);
  }
  w.f32(`${arch}.attention.layer_norm_rms_epsilon`, c.rmsNormEps);
  w.f32(`${arch}.rope.freq_base`, c.ropeTheta);
  if (c.ropeScaling?.type === 'linear') {
    w.string(`${arch}.rope.scaling.type`, 'linear');
    w.f32(`${arch}.rope.scaling.factor`, c.ropeScaling.factor);
  }

  const v = vocabularyFromTokenizerJson(src.tokenizerJson, src.tokenizerConfig ?? {});
  w.string('tokenizer.ggml.model', v.model);
  if (v.pre) w.string('tokenizer.ggml.pre', v.pre);
  w.array('tokenizer.ggml.tokens', GGUFValueType.STRING, v.tokens);
  if (v.model === 'llama') w.array('tokenizer.ggml.scores', GGUFValueType.FLOAT32, v.scores);
  w.array('tokenizer.ggml.token_type', GGUFValueType.INT32, v.types);
  if (v.merges) w.array('tokenizer.ggml.merges', GGUFValueType.STRING, v.merges);
  const bos = c.bosTokenId ?? v.bos;
  if (bos !== null) w.u32('tokenizer.ggml.bos_token_id', bos);
  const eos = v.eos ?? c.eosTokenIds[0] ?? null;
  if (eos !== null) w.u32('tokenizer.ggml.eos_token_id', eos);
  if (v.unk !== null) w.u32('tokenizer.ggml.unknown_token_id', v.unk);
  if (v.pad !== null) w.u32('tokenizer.ggml.padding_token_id', v.pad);
  w.bool('tokenizer.ggml.add_bos_token', v.addBos);
  w.bool('tokenizer.ggml.add_eos_token', v.addEos);
  if (v.model === 'llama') w.bool('tokenizer.ggml.add_space_prefix', v.addSpacePrefix);
  const template = pickChatTemplate(src.tokenizerConfig?.chat_template);
  if (template) w.string('tokenizer.chat_template', template);

  const hfNames: string[] = [];
  for (const t of llamaTensorList(c)) {
    const info = src.weights.info(t.name);
    if (!info) throw new Error(`convert: tensor '${t.name}' is missing from the model files`);
    const matrix = t.shape.length === 2;
    // A row that does not fill whole blocks falls back to F16, as llama.cpp's converter does.
    const target: DType = !matrix ? 'f32' : (type === 'q8_0' || type === 'q4_0') && t.shape[1] % 32 !== 0 ? 'f16' : type;
    w.addTensor({ name: ggufTensorName(t.name)!, ggmlType: ggmlTypeOf(target), shape: t.shape });
    hfNames.push(t.name);
  }
  return { writer: w, config: c, hfNames };
}

/** Converts a model to GGUF, streaming the file's bytes to `sink`. */
export async function convertToGGUF(
  src: ConvertSource,
  type: GGUFOutType,
  sink: (chunk: Uint8Array) => Promise<void> | void,
  onProgress?: (doneTensors: number, totalTensors: number) => void,
): Promise<void> {
  const { writer, config: c, hfNames } = ggufWriterFor(src, type);
  const permute = c.modelType !== 'qwen2';
  await writer.write(async (t, i) => {
    const name = hfNames[i];
    const info = src.weights.info(name)!;
    const raw = await src.weights.read(name);
    const n = t.shape.reduce((a, b) => a * b, 1);
    const target = GGML_TYPES[t.ggmlType].dtype!;
    let bytes: Uint8Array;
    if (info.dtype === target) bytes = raw;
    else {
      const f32 = toF32(raw, info.dtype, n);
      if (target === 'f32') bytes = new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
      else if (target === 'f16') bytes = new Uint8Array(Uint16Array.from(f32, f32ToF16).buffer);
      else bytes = quantize(target as 'q8_0' | 'q4_0', f32);
    }
    const qk = permute ? /self_attn\.([qk])_proj\./.exec(name) : null;
    if (qk) bytes = permuteQKRows(bytes, t.shape[0], qk[1] === 'q' ? c.nHeads : c.nKVHeads, false);
    onProgress?.(i + 1, hfNames.length);
    return bytes;
  }, sink);
}
