import { kvLayerCount, type KVLayerMap } from './kv-layer-map.js';

/** The one config type every supported architecture is normalized into. */
export interface LlamaConfig {
  /** The HF model_type this came from: llama, mistral or qwen2. */
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  nLayers: number;
  nHeads: number;
  nKVHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** Qwen2 (always) and Llama with attention_bias: q/k/v projections have biases. */
  qkvBias: boolean;
  /** Mistral / Qwen2 sliding-window attention, null for full attention. */
  slidingWindow: number | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /**
   * Cross-layer KV sharing (LCKV, CLA): which layer's keys and values each layer attends to, set by
   * the plugin that reads such a config. Absent or null: every layer its own (and `slidingWindow`).
   */
  kvLayerMap?: KVLayerMap | null;
}

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

const ARCHITECTURES: Record<string, string> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
};
const MODEL_TYPES = new Set(Object.values(ARCHITECTURES));
/** Llama variants a technique package reads (its plugin's readConfig hook). */
const PLUGIN_MODEL_TYPES: Record<string, string> = {
  'lckv-llama': 'a Layer-Condensed KV cache model (whyNLP/LCKV): load it with the lckv() plugin from @lithe/lckv',
};

type Json = Record<string, unknown>;

/** A config value as the user wrote it: JSON.stringify would show 1e400 (read as Infinity) as null. */
export function showConfigValue(v: unknown): string {
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : `${v > 0 ? '' : '-'}a number too large to represent (read as ${v})`;
  return JSON.stringify(v) ?? String(v);
}

function int(cfg: Json, key: string, fallback?: number, prefix = ''): number {
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new Error(`config.json: '${prefix}${key}' must be a positive integer, got ${showConfigValue(cfg[key])}`);
  }
  return v;
}

function num(cfg: Json, key: string, fallback: number, prefix = ''): number {
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new Error(`config.json: '${prefix}${key}' must be a positive number, got ${showConfigValue(cfg[key])}`);
  return v;
}

function tokenIds(v: unknown): number[] {
  if (v == null) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.filter((x): x is number => Number.isSafeInteger(x));
}

function parseRopeScaling(raw: unknown): RopeScaling | null {
  if (raw == null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new Error(`config.json: 'rope_scaling' must be null or an object such as {"rope_type": "linear", "factor": 2}, got ${showConfigValue(raw)}`);
  }
  const r = raw as Json;
  const type = r.rope_type ?? r.type;
  if (type === 'default') return null;
  const p = 'rope_scaling.';
  if (type === 'linear') return { type, factor: num(r, 'factor', 1, p) };
  if (type === 'llama3') {
    return {
      type,
      factor: num(r, 'factor', 8, p),
      lowFreqFactor: num(r, 'low_freq_factor', 1, p),
      highFreqFactor: num(r, 'high_freq_factor', 4, p),
      originalMaxPositionEmbeddings: int(r, 'original_max_position_embeddings', 8192, p),
    };
  }
  if (type === undefined) throw new Error(`config.json: 'rope_scaling' has no "rope_type" (or "type"); supported: linear, llama3`);
  throw new Error(`config.json: rope_scaling type ${typeof type === 'string' ? `'${type}'` : showConfigValue(type)} is not supported (supported: linear, llama3)`);
}

/** Reads an HF config.json; unsupported architectures and settings fail here with a clear message. */
export function parseConfig(cfg: Json, generationConfig?: Json | null): LlamaConfig {
  const archs = (cfg.architectures as string[] | undefined) ?? [];
  const modelType = (cfg.model_type as string | undefined) ?? ARCHITECTURES[archs[0]];
  if (modelType && PLUGIN_MODEL_TYPES[modelType]) throw new Error(`config.json: model_type '${modelType}' is ${PLUGIN_MODEL_TYPES[modelType]}`);
  if (!modelType || !MODEL_TYPES.has(modelType)) {
    const what = modelType ? `model_type '${modelType}'` : `architectures ${JSON.stringify(archs)}`;
    throw new Error(`unsupported architecture: ${what}; lithe runs Llama-family models (${Object.keys(ARCHITECTURES).join(', ')})`);
  }
  const act = cfg.hidden_act ?? 'silu';
  if (act !== 'silu') throw new Error(`config.json: hidden_act '${String(act)}' is not supported (Llama-family models use silu)`);
  if (cfg.mlp_bias === true) throw new Error('config.json: mlp_bias is not supported');

  const hiddenSize = int(cfg, 'hidden_size');
  const nHeads = int(cfg, 'num_attention_heads');
  const nKVHeads = int(cfg, 'num_key_value_heads', nHeads);
  if (nHeads % nKVHeads !== 0) throw new Error(`config.json: num_attention_heads (${nHeads}) must be a multiple of num_key_value_heads (${nKVHeads})`);
  if (cfg.head_dim == null && hiddenSize % nHeads !== 0) {
    throw new Error(`config.json: hidden_size (${hiddenSize}) is not divisible by num_attention_heads (${nHeads}), and no head_dim is given; fix one of them or set head_dim`);
  }
  const headDim = int(cfg, 'head_dim', hiddenSize / nHeads);
  if (headDim % 2 !== 0) throw new Error(`config.json: head_dim must be even for rotary embeddings, got ${headDim}`);

  const useWindow = modelType === 'qwen2' ? cfg.use_sliding_window === true : true;
  const window = cfg.sliding_window;
  const eos = tokenIds(generationConfig?.eos_token_id ?? cfg.eos_token_id);
  const bos = generationConfig?.bos_token_id ?? cfg.bos_token_id;

  return {
    modelType,
    vocabSize: int(cfg, 'vocab_size'),
    hiddenSize,
    intermediateSize: int(cfg, 'intermediate_size'),
    nLayers: int(cfg, 'num_hidden_layers'),
    nHeads,
    nKVHeads,
    headDim,
    rmsNormEps: num(cfg, 'rms_norm_eps', 1e-6),
    ropeTheta: num(cfg, 'rope_theta', 10000),
    ropeScaling: parseRopeScaling(cfg.rope_scaling),
    maxPositionEmbeddings: int(cfg, 'max_position_embeddings', 2048),
    tieWordEmbeddings: cfg.tie_word_embeddings === true,
    qkvBias: modelType === 'qwen2' || cfg.attention_bias === true,
    slidingWindow: useWindow && typeof window === 'number' && window > 0 ? window : null,
    bosTokenId: Number.isSafeInteger(bos) ? (bos as number) : null,
    eosTokenIds: eos,
  };
}

/** Parameters of the model, counting a tied embedding once. */
export function parameterCount(c: LlamaConfig): number {
  const q = c.nHeads * c.headDim;
  const kv = c.nKVHeads * c.headDim;
  const attn = c.hiddenSize * q + q * c.hiddenSize + (c.qkvBias ? q : 0);
  const kvProj = c.hiddenSize * 2 * kv + (c.qkvBias ? 2 * kv : 0);
  const mlp = 3 * c.hiddenSize * c.intermediateSize;
  const layer = attn + mlp + 2 * c.hiddenSize;
  const embed = c.vocabSize * c.hiddenSize;
  // Layers that compute no keys and values (a KV layer map) have no k/v projections.
  return embed * (c.tieWordEmbeddings ? 1 : 2) + c.nLayers * layer + kvLayerCount(c.kvLayerMap ?? null, c.nLayers) * kvProj + c.hiddenSize;
}

/** Bytes of KV cache per token at f32 (keys and values of every layer that computes them). */
export function kvBytesPerToken(c: LlamaConfig, bytesPerElement = 4): number {
  return 2 * kvLayerCount(c.kvLayerMap ?? null, c.nLayers) * c.nKVHeads * c.headDim * bytesPerElement;
}
