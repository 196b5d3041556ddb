import { describe, expect, it } from 'vitest';
import { parameterCount, parseConfig } from './config.js';
import { ropeInvFrequencies } from './rope-frequencies.js';

const llama = { architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 32000, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4 };

describe('parseConfig', () => {
  it('normalizes a TinyLlama config and counts its parameters', () => {
    const c = parseConfig({ ...llama, rms_norm_eps: 1e-5, max_position_embeddings: 2048, eos_token_id: 2, bos_token_id: 1 });
    expect(c).toMatchObject({ headDim: 64, nKVHeads: 4, qkvBias: false, slidingWindow: null, tieWordEmbeddings: false, eosTokenIds: [2], bosTokenId: 1 });
    expect(parameterCount(c)).toBe(1_100_048_384); // TinyLlama-1.1B's published count
  });

  it('reads Qwen2 biases, Mistral windows and generation_config eos lists', () => {
    expect(parseConfig({ ...llama, model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], sliding_window: 4096, use_sliding_window: false }).qkvBias).toBe(true);
    expect(parseConfig({ ...llama, model_type: 'qwen2', sliding_window: 4096, use_sliding_window: false }).slidingWindow).toBeNull();
    expect(parseConfig({ ...llama, model_type: 'mistral', sliding_window: 4096 }).slidingWindow).toBe(4096);
    expect(parseConfig(llama, { eos_token_id: [128001, 128008, 128009] }).eosTokenIds).toEqual([128001, 128008, 128009]);
  });

  it('rejects unsupported architectures and broken fields with a clear message', () => {
    expect(() => parseConfig({ ...llama, model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] })).toThrow(/unsupported architecture: model_type 'gpt2'.*LlamaForCausalLM/);
    expect(() => parseConfig({ ...llama, model_type: undefined, architectures: ['FalconForCausalLM'] })).toThrow(/unsupported architecture/);
    expect(() => parseConfig({ ...llama, hidden_size: -3 })).toThrow(/'hidden_size' must be a positive integer/);
    expect(() => parseConfig({ ...llama, num_key_value_heads: 5 })).toThrow(/multiple of num_key_value_heads/);
    expect(() => parseConfig({ ...llama, rope_scaling: { rope_type: 'yarn', factor: 4 } })).toThrow(/rope_scaling type 'yarn' is not supported/);
    expect(() => parseConfig({ ...llama, hidden_act: 'gelu' })).toThrow(/hidden_act 'gelu'/);
  });

  it('names the field and the value the user wrote', () => {
    expect(() => parseConfig({ ...llama, hidden_size: 2050 })).toThrow(/hidden_size \(2050\) is not divisible by num_attention_heads \(32\), and no head_dim is given/);
    expect(parseConfig({ ...llama, hidden_size: 2050, head_dim: 64 }).headDim).toBe(64);
    expect(() => parseConfig({ ...llama, rope_scaling: 'garbage' })).toThrow(/'rope_scaling' must be null or an object .*got "garbage"/);
    expect(() => parseConfig({ ...llama, rope_scaling: { factor: 2 } })).toThrow(/'rope_scaling' has no "rope_type"/);
    expect(() => parseConfig({ ...llama, rope_scaling: { rope_type: 'linear', factor: 'x' } })).toThrow(/'rope_scaling.factor' must be a positive number, got "x"/);
    // JSON.parse reads 1e400 as Infinity, which JSON.stringify would print as null.
    expect(() => parseConfig(JSON.parse(JSON.stringify(llama).replace('}', ', "rms_norm_eps": 1e400}')))).toThrow(/'rms_norm_eps' must be a positive number, got a number too large to represent \(read as Infinity\)/);
  });
});

describe('ropeInvFrequencies', () => {
  it("matches HF's Llama 3.1 frequencies (values from transformers' formula in PyTorch f32)", () => {
    const c = parseConfig({
      ...llama,
      hidden_size: 4096,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      rope_theta: 500000,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    });
    const inv = ropeInvFrequencies(c);
    const golden: [number, number][] = [
      [0, 1.0], [10, 0.12868738174438477], [20, 0.016560440883040428], [25, 0.005940730683505535], [30, 0.0013718936825171113],
      [35, 9.556212171446532e-5], [40, 3.428102354519069e-5], [50, 4.411534519022098e-6], [63, 3.068925877869333e-7],
    ];
    for (const [i, v] of golden) expect(Math.abs(inv[i] - v) / v).toBeLessThan(1e-5);
  });

  it('divides by the factor for linear scaling', () => {
    const plain = ropeInvFrequencies(parseConfig(llama));
    const scaled = ropeInvFrequencies(parseConfig({ ...llama, rope_scaling: { type: 'linear', factor: 4 } }));
    scaled.forEach((f, i) => expect(f).toBeCloseTo(plain[i] / 4, 12));
  });
});
