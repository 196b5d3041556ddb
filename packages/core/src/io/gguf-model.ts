/**
 * A Llama-family model from a GGUF file: an HF-style config.json object from the `<arch>.*` keys,
 * a WeightSource that serves GGUF tensors under the HF names the loader asks for (undoing
 * llama.cpp's q/k row permutation), and tokenizer files from tokenizer.ggml.*. Browser-safe.
 */
import type { ByteSource } from './byte-source.js';
import { GGUFValueType, parseGGUF, type GGUFFile, type GGUFValue } from './gguf.js';
import { tokenizerFromGGUF } from './gguf-tokenizer.js';
import type { WeightSource } from '../model/weights.js';

/** GGUF architectures lithe runs, and the HF model_type each maps to. */
const ARCHITECTURES: Record<string, { modelType: string; hfArch: string; permuteQK: boolean }> = {
  llama: { modelType: 'llama', hfArch: 'LlamaForCausalLM', permuteQK: true },
  qwen2: { modelType: 'qwen2', hfArch: 'Qwen2ForCausalLM', permuteQK: false },
};

// HF tensor names -> GGUF tensor names, for the names the Llama loader asks for.
const FIXED: Record<string, string> = {
  'model.embed_tokens.weight': 'token_embd.weight',
  'model.norm.weight': 'output_norm.weight',
  'lm_head.weight': 'output.weight',
};
const LAYER_PARTS: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
};
const invert = (m: Record<string, string>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [v, k]));
const FIXED_HF = invert(FIXED);
const LAYER_PARTS_HF = invert(LAYER_PARTS);

/** HF tensor name -> GGUF tensor name. */
export function ggufTensorName(hf: string): string | null {
  if (FIXED[hf]) return FIXED[hf];
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  const part = m && LAYER_PARTS[m[2]];
  return part ? `blk.${m[1]}.${part}` : null;
}

/** GGUF tensor name -> HF tensor name (null for tensors the loader does not use). */
export function hfTensorName(gguf: string): string | null {
  if (FIXED_HF[gguf]) return FIXED_HF[gguf];
  const m = /^blk\.(\d+)\.(.+)$/.exec(gguf);
  const part = m && LAYER_PARTS_HF[m[2]];
  return part ? `model.layers.${m[1]}.${part}` : null;
}

/**
 * llama.cpp's converter reorders the rows of each q/k head from HF's rotate_half layout
 * [first halves..., second halves...] to interleaved pairs [(0, hd/2), (1, hd/2 + 1), ...]. This
 * moves whole rows (so quantized blocks stay intact): `inverse` undoes it.
 */
export function permuteQKRows(bytes: Uint8Array, rows: number, heads: number, inverse: boolean): Uint8Array {
  if (rows % heads !== 0 || (rows / heads) % 2 !== 0) throw new Error(`q/k permutation: ${rows} rows do not split into ${heads} heads of even size`);
  const rowBytes = bytes.length / rows;
  const hd = rows / heads;
  const half = hd / 2;
  const out = new Uint8Array(bytes.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const hfRow = h * hd + j * half + i;
        const ggufRow = h * hd + 2 * i + j;
        const [from, to] = inverse ? [ggufRow, hfRow] : [hfRow, ggufRow];
        out.set(bytes.subarray(from * rowBytes, (from + 1) * rowBytes), to * rowBytes);
      }
    }
  }
  return out;
}

export interface GGUFModel {
  location: string;
  file: GGUFFile;
  architecture: string;
  /** An HF config.json equivalent, for `parseConfig`. */
  config: Record<string, unknown>;
  weights: WeightSource;
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  close(): Promise<void>;
}

export async function loadGGUFModel(source: ByteSource): Promise<GGUFModel> {
  let file: GGUFFile;
  try {
    file = await parseGGUF(source);
  } catch (err) {
    await source.close?.().catch(() => {});
    throw err;
  }
  try {
    const config = ggufConfig(file);
    const { tokenizerJson, tokenizerConfig } = tokenizerFromGGUF(file.get, source.name);
    return {
      location: source.name,
      file,
      architecture: String(file.get('general.architecture')),
      config,
      weights: ggufWeightSource(file, config),
      tokenizerJson,
      tokenizerConfig,
      close: async () => source.close?.(),
    };
  } catch (err) {
    await source.close?.().catch(() => {});
    throw err;
  }
}

/**
 * The shortest decimal that rounds to the same f32, so 1e-5 stored as f32 reads back as 1e-5 (the
 * value config.json had) rather than 9.99999974e-6.
 */
function shortestF32(v: number): number {
  for (let p = 1; p <= 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === v) return d;
  }
  return v;
}

/** config.json fields from `general.architecture` and its `<arch>.*` keys. */
export function ggufConfig(file: GGUFFile): Record<string, unknown> {
  const where = file.source.name;
  const arch = file.get('general.architecture');
  if (arch === undefined) throw new Error(`${where}: general.architecture is missing`);
  if (typeof arch !== 'string') throw new Error(`${where}: general.architecture must be a string such as 'llama', got ${typeof arch} ${String(arch)}`);
  const a = ARCHITECTURES[arch];
  if (!a) throw new Error(`${where}: GGUF architecture '${arch}' is not supported (lithe runs ${Object.keys(ARCHITECTURES).join(', ')})`);
  const num = (key: string, required = true): number | undefined => {
    const entry = file.metadata.get(`${arch}.${key}`);
    if (entry === undefined) {
      if (required) throw new Error(`${where}: ${arch}.${key} is missing`);
      return undefined;
    }
    const v = entry.value;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${where}: ${arch}.${key} must be a number, got ${String(v)}`);
    return entry.type === GGUFValueType.FLOAT32 ? shortestF32(v) : v;
  };
  if (file.tensors.has('rope_freqs.weight')) throw new Error(`${where}: per-dimension RoPE frequency factors (rope_freqs.weight, Llama 3.1 scaling) are not supported in GGUF files yet; load the HF directory instead`);
  const scaling = file.get(`${arch}.rope.scaling.type`);
  let ropeScaling: Record<string, unknown> | null = null;
  if (scaling === 'linear') ropeScaling = { type: 'linear', factor: num('rope.scaling.factor') };
  else if (scaling !== undefined && scaling !== 'none') throw new Error(`${where}: ${arch}.rope.scaling.type '${String(scaling)}' is not supported (supported: linear)`);

  // Checked here so the message names the GGUF key, not the config.json field it becomes.
  const count = (key: string, required = true): number | undefined => {
    const v = num(key, required);
    if (v !== undefined && !(Number.isSafeInteger(v) && v > 0)) throw new Error(`${where}: ${arch}.${key} must be a positive integer, got ${v}`);
    return v;
  };
  const hidden = count('embedding_length')!;
  const heads = count('attention.head_count')!;
  for (const key of ['feed_forward_length', 'block_count', 'attention.head_count_kv', 'attention.key_length', 'context_length', 'vocab_size']) count(key, false);
  if (hidden % heads !== 0 && file.metadata.get(`${arch}.attention.key_length`) === undefined && file.metadata.get(`${arch}.rope.dimension_count`) === undefined) {
    throw new Error(`${where}: ${arch}.embedding_length (${hidden}) is not divisible by ${arch}.attention.head_count (${heads}), and no ${arch}.attention.key_length is given`);
  }
  const tokens = file.get('tokenizer.ggml.tokens');
  const embd = file.tensors.get('token_embd.weight');
  const eos = new Set<number>();
  for (const key of ['tokenizer.ggml.eos_token_id', 'tokenizer.ggml.eot_token_id', 'tokenizer.ggml.eom_token_id']) {
    const v: GGUFValue | undefined = file.get(key);
    if (typeof v === 'number' && v !== 0xffffffff) eos.add(v);
  }
  const bos = file.get('tokenizer.ggml.bos_token_id');
  const headDim = num('attention.key_length', false) ?? num('rope.dimension_count', false) ?? hidden / heads;
  return {
    architectures: [a.hfArch],
    model_type: a.modelType,
    vocab_size: num('vocab_size', false) ?? (Array.isArray(tokens) ? tokens.length : embd?.shape[0]),
    hidden_size: hidden,
    intermediate_size: num('feed_forward_length'),
    num_hidden_layers: num('block_count'),
    num_attention_heads: heads,
    num_key_value_heads: num('attention.head_count_kv', false) ?? heads,
    head_dim: headDim,
    max_position_embeddings: num('context_length', false) ?? 2048,
    rms_norm_eps: num('attention.layer_norm_rms_epsilon', false) ?? 1e-5,
    rope_theta: num('rope.freq_base', false) ?? 10000,
    rope_scaling: ropeScaling,
    tie_word_embeddings: !file.tensors.has('output.weight'),
    attention_bias: file.tensors.has('blk.0.attn_q.bias'),
    hidden_act: 'silu',
    bos_token_id: typeof bos === 'number' ? bos : null,
    eos_token_id: [...eos],
  };
}

/** The file's tensors under HF names, q/k rows back in HF order. */
export function ggufWeightSource(file: GGUFFile, config: Record<string, unknown>): WeightSource {
  const where = file.source.name;
  const permute = ARCHITECTURES[config.model_type as string]?.permuteQK ?? false;
  const tensorOf = (name: string) => {
    const g = ggufTensorName(name);
    return g === null ? undefined : file.tensors.get(g);
  };
  let totalBytes = 0;
  for (const t of file.tensors.values()) totalBytes += t.byteLength;
  return {
    totalBytes,
    // Under their HF names, as the loader asks for them.
    *names() {
      for (const t of file.tensors.values()) {
        const hf = hfTensorName(t.name);
        if (hf) yield hf;
      }
    },
    info(name) {
      const t = tensorOf(name);
      if (!t) return undefined;
      if (t.dtype === null) throw new Error(`${where}: tensor '${t.name}' has ggml type ${t.typeName}, which lithe cannot compute with; re-quantize the model to Q8_0, Q4_0, Q4_1, Q4_K or Q6_K`);
      return { dtype: t.dtype, shape: t.shape };
    },
    async read(name) {
      const t = tensorOf(name);
      if (!t) throw new Error(`${where}: no tensor for '${name}' (GGUF name '${ggufTensorName(name)}')`);
      const bytes = await file.read(t.name, new Uint8Array(t.byteLength));
      const m = permute ? /\.attn_([qk])\.(weight|bias)$/.exec(t.name) : null;
      if (!m) return bytes;
      const heads = (m[1] === 'q' ? config.num_attention_heads : config.num_key_value_heads) as number;
      return permuteQKRows(bytes, t.shape[0], heads, true);
    },
  };
}
