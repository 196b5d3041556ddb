import type { Backend } from '../backend/backend.js';
import { numel, formatShape, shapeEquals } from '../tensor/shape.js';
import { dtypeInfo, type DType } from '../tensor/dtype.js';
import type { OpName } from '../backend/kernel-registry.js';
import { decodeHalfInto, f32ToBf16, f32ToF16 } from '../tensor/half.js';
import type { Tensor } from '../tensor/tensor.js';
import type { LlamaConfig } from './config.js';
import { computesKV } from './kv-layer-map.js';
import type { LinearModule } from './linear-module.js';

/** Where weights come from: an HF directory, a GGUF file, or a test's in-memory map. */
export interface WeightSource {
  readonly totalBytes: number;
  /** Every tensor name the source holds (a loader hook may look for companions such as scales). */
  names(): Iterable<string>;
  info(name: string): { dtype: DType; shape: readonly number[] } | undefined;
  /** The raw little-endian bytes of a tensor, in a buffer the caller may keep. */
  read(name: string): Promise<Uint8Array>;
}

export type WeightRole = 'embedding' | 'linear' | 'norm' | 'bias' | 'lm_head';

export interface WeightInfo {
  name: string;
  role: WeightRole;
  /** Decoder layer index, null for embedding, final norm and lm_head. */
  layer: number | null;
  /** A linear weight's bias, loaded before it: a module built from the weight takes it over. */
  bias?: Tensor | null;
}

/** What a `loadWeight` hook is asked for: a weight, by HF name, with the shape the config implies. */
export interface WeightRequest extends WeightInfo {
  shape: readonly number[];
}

/**
 * Loads a weight the default way cannot (a pre-quantized checkpoint's own layout), or returns
 * undefined to leave it to the default. What it returns skips the transforms.
 */
export type WeightLoader = (request: WeightRequest, source: WeightSource) => Promise<Weight | undefined>;

/**
 * Runs on each tensor as it loads (quantizers), so at most one full-precision tensor is alive extra.
 * A linear weight may come back as a whole `LinearModule` (a quantized format with several arrays);
 * the bias, if any, is then the module's business.
 */
export type WeightTransform = (tensor: Tensor, info: WeightInfo) => Weight | Promise<Weight>;

/** A loaded weight: a tensor, or for linear layers a module a plugin built from it. */
export type Weight = Tensor | LinearModule;

export function isLinearModule(w: Weight): w is LinearModule {
  return typeof (w as LinearModule).forward === 'function';
}

export interface WeightLoadOptions {
  /** Storage dtype of the embedding and linear matrices; 'auto' keeps the file's. Norms and biases are always f32. */
  dtype?: 'auto' | 'f32' | 'f16' | 'bf16';
  transform?: WeightTransform;
  loadWeight?: WeightLoader;
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
}

export interface LayerWeights {
  attnNorm: Tensor;
  q: Weight;
  /** Null for a layer that computes no keys and values (a KV layer map reads another layer's). */
  k: Weight | null;
  v: Weight | null;
  o: Weight;
  qBias: Tensor | null;
  kBias: Tensor | null;
  vBias: Tensor | null;
  mlpNorm: Tensor;
  gate: Weight;
  up: Weight;
  down: Weight;
}

export interface LlamaWeights {
  embed: Tensor;
  layers: LayerWeights[];
  norm: Tensor;
  /** The same tensor as `embed` when embeddings are tied. */
  lmHead: Weight;
}

const FLOATS = new Set(['f32', 'f16', 'bf16']);

/** Converts raw float bytes of one dtype into a new tensor of another on the backend. */
function convert(backend: Backend, bytes: Uint8Array, from: DType, to: DType, shape: readonly number[]): Tensor {
  if (from === to) return backend.upload(bytes, shape, to, 'weights');
  const n = numel(shape);
  const f32 = new Float32Array(n);
  if (from === 'f32') f32.set(new Float32Array(bytes.buffer, bytes.byteOffset, n));
  else decodeHalfInto(new Uint16Array(bytes.buffer, bytes.byteOffset, n), from as 'f16' | 'bf16', f32);
  if (to === 'f32') return backend.upload(new Uint8Array(f32.buffer), shape, to, 'weights');
  const encode = to === 'f16' ? f32ToF16 : f32ToBf16;
  const half = new Uint16Array(n);
  for (let i = 0; i < n; i++) half[i] = encode(f32[i]);
  return backend.upload(new Uint8Array(half.buffer), shape, to, 'weights');
}

/**
 * A packed (block-quantized) weight loads as is when the backend has a kernel for it: `linear` for
 * linear and lm_head matrices, `embedding` (and `linear`, when tied to the lm_head) for the embedding.
 */
function checkPacked(backend: Backend, name: string, role: WeightRole, dtype: DType, shape: readonly number[], tied: boolean): void {
  const ops: OpName[] = role === 'linear' || role === 'lm_head' ? ['linear'] : role === 'embedding' ? (tied ? ['embedding', 'linear'] : ['embedding']) : [];
  if (ops.length === 0) throw new Error(`weights: '${name}' (${role}) has dtype ${dtype}; norms and biases must be f32, f16 or bf16`);
  const missing = ops.find((op) => !backend.supportsOp(op, dtype));
  if (missing) {
    throw new Error(`weights: '${name}' has dtype ${dtype}, but backend '${backend.name}' has no '${missing}' kernel for ${dtype}; a plugin or backend that provides ${dtype} kernels is missing`);
  }
  const { blockSize } = dtypeInfo(dtype);
  const cols = shape[shape.length - 1];
  if (cols % blockSize !== 0) throw new Error(`weights: '${name}' has rows of ${cols} values, not a multiple of the ${dtype} block size ${blockSize}`);
}

/** A weight from a transform or loader hook: only linear weights may be modules, of the right size. */
function checkLoaded(w: Weight, info: WeightInfo, shape: readonly number[]): Weight {
  if (isLinearModule(w)) {
    if (info.role !== 'linear' && info.role !== 'lm_head') throw new Error(`weights: a plugin turned '${info.name}' (${info.role}) into a module; only linear weights may become modules`);
    if (w.outFeatures !== shape[0] || w.inFeatures !== shape[1]) {
      throw new Error(`weights: a plugin built '${info.name}' as a ${w.outFeatures} × ${w.inFeatures} module; config.json implies ${formatShape(shape)}`);
    }
  } else if (!shapeEquals(w.shape, shape)) {
    throw new Error(`weights: a plugin returned '${info.name}' with shape ${formatShape(w.shape)}; config.json implies ${formatShape(shape)}`);
  }
  return w;
}

/** Reads the Llama weight set by HF names, checking every shape against the config. */
export async function loadLlamaWeights(backend: Backend, source: WeightSource, c: LlamaConfig, opts: WeightLoadOptions = {}): Promise<LlamaWeights> {
  let loaded = 0;
  const q = c.nHeads * c.headDim;
  const kv = c.nKVHeads * c.headDim;

  const load = async (name: string, role: WeightRole, layer: number | null, shape: number[], bias: Tensor | null = null): Promise<Weight> => {
    const info: WeightInfo = { name, role, layer, bias };
    const custom = opts.loadWeight ? await opts.loadWeight({ ...info, shape }, source) : undefined;
    if (custom) return checkLoaded(custom, info, shape);
    const meta = source.info(name);
    if (!meta) throw new Error(`weights: tensor '${name}' is missing from the model files`);
    if (!shapeEquals(meta.shape, shape)) throw new Error(`weights: '${name}' has shape ${formatShape(meta.shape)}, config.json implies ${formatShape(shape)}`);
    const matrix = role === 'embedding' || role === 'linear' || role === 'lm_head';
    const float = FLOATS.has(meta.dtype);
    if (!float) checkPacked(backend, name, role, meta.dtype, shape, c.tieWordEmbeddings);
    // Packed (quantized) matrices stay in their format; `dtype` converts float matrices only.
    const target = !matrix ? 'f32' : !float || !opts.dtype || opts.dtype === 'auto' ? meta.dtype : opts.dtype;
    const bytes = await source.read(name);
    const tensor = convert(backend, bytes, meta.dtype, target, shape);
    loaded += bytes.byteLength;
    opts.onProgress?.(loaded, source.totalBytes);
    return checkLoaded(opts.transform ? await opts.transform(tensor, info) : tensor, info, shape);
  };
  // Norms, biases and the embedding stay tensors whatever the transforms do.
  const tensor = async (name: string, role: WeightRole, layer: number | null, shape: number[]) => (await load(name, role, layer, shape)) as Tensor;

  const embed = await tensor('model.embed_tokens.weight', 'embedding', null, [c.vocabSize, c.hiddenSize]);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < c.nLayers; i++) {
    const p = `model.layers.${i}.`;
    // q/k/v with their biases (Qwen2): the bias first, so a module built from the weight can own it.
    const attn = async (proj: string, rows: number): Promise<[Weight, Tensor | null]> => {
      const bias = c.qkvBias ? await tensor(`${p}self_attn.${proj}.bias`, 'bias', i, [rows]) : null;
      const w = await load(`${p}self_attn.${proj}.weight`, 'linear', i, [rows, c.hiddenSize], bias);
      return [w, isLinearModule(w) ? null : bias];
    };
    const attnNorm = await tensor(`${p}input_layernorm.weight`, 'norm', i, [c.hiddenSize]);
    const [qw, qBias] = await attn('q_proj', q);
    const ownKV = !c.kvLayerMap || computesKV(c.kvLayerMap, i);
    const [kw, kBias] = ownKV ? await attn('k_proj', kv) : [null, null];
    const [vw, vBias] = ownKV ? await attn('v_proj', kv) : [null, null];
    layers.push({
      attnNorm,
      q: qw,
      qBias,
      k: kw,
      kBias,
      v: vw,
      vBias,
      o: await load(`${p}self_attn.o_proj.weight`, 'linear', i, [c.hiddenSize, q]),
      mlpNorm: await tensor(`${p}post_attention_layernorm.weight`, 'norm', i, [c.hiddenSize]),
      gate: await load(`${p}mlp.gate_proj.weight`, 'linear', i, [c.intermediateSize, c.hiddenSize]),
      up: await load(`${p}mlp.up_proj.weight`, 'linear', i, [c.intermediateSize, c.hiddenSize]),
      down: await load(`${p}mlp.down_proj.weight`, 'linear', i, [c.hiddenSize, c.intermediateSize]),
    });
  }
  const norm = await tensor('model.norm.weight', 'norm', null, [c.hiddenSize]);
  const lmHead = c.tieWordEmbeddings ? embed : await load('lm_head.weight', 'lm_head', null, [c.vocabSize, c.hiddenSize]);
  return { embed, layers, norm, lmHead };
}
