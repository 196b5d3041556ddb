import type { Backend } from '../backend/backend.js';
import { numel, formatShape, shapeEquals } from '../tensor/shape.js';
import { dtypeInfo, type DType } from '../tensor/dtype.js';
import type { OpName } from '../backend/kernel-registry.js';
import { decodeHalfInto, f32ToBf16, f32ToF16 } from '../tensor/half.js';
import type { Tensor } from '../tensor/tensor.js';
import type { LlamaConfig } from './config.js';
import type { LinearModule } from './linear-module.js';

/** Where weights come from: an HF directory, a GGUF file, or a test's in-memory map. */
export interface WeightSource {
  readonly totalBytes: number;
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
}

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
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
}

export interface LayerWeights {
  attnNorm: Tensor;
  q: Weight;
  k: Weight;
  v: Weight;
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

/** Reads the Llama weight set by HF names, checking every shape against the config. */
export async function loadLlamaWeights(backend: Backend, source: WeightSource, c: LlamaConfig, opts: WeightLoadOptions = {}): Promise<LlamaWeights> {
  let loaded = 0;
  const q = c.nHeads * c.headDim;
  const kv = c.nKVHeads * c.headDim;

  const load = async (name: string, role: WeightRole, layer: number | null, shape: number[]): Promise<Weight> => {
    const meta = source.info(name);
    if (!meta) throw new Error(`weights: tensor '${name}' is missing from the model files`);
    if (!shapeEquals(meta.shape, shape)) throw new Error(`weights: '${name}' has shape ${formatShape(meta.shape)}, config.json implies ${formatShape(shape)}`);
    const matrix = role === 'embedding' || role === 'linear' || role === 'lm_head';
    const float = FLOATS.has(meta.dtype);
    if (!float) checkPacked(backend, name, role, meta.dtype, shape, c.tieWordEmbeddings);
    // Packed (quantized) matrices stay in their format; `dtype` converts float matrices only.
    const target = !matrix ? 'f32' : !float || !opts.dtype || opts.dtype === 'auto' ? meta.dtype : opts.dtype;
    const bytes = await source.read(name);
    const info: WeightInfo = { name, role, layer };
    const tensor = convert(backend, bytes, meta.dtype, target, shape);
    loaded += bytes.byteLength;
    opts.onProgress?.(loaded, source.totalBytes);
    const out = opts.transform ? await opts.transform(tensor, info) : tensor;
    if (isLinearModule(out) && role !== 'linear' && role !== 'lm_head') throw new Error(`weights: a transform turned '${name}' (${role}) into a module; only linear weights may become modules`);
    return out;
  };
  // Norms, biases and the embedding stay tensors whatever the transforms do.
  const tensor = async (name: string, role: WeightRole, layer: number | null, shape: number[]) => (await load(name, role, layer, shape)) as Tensor;

  const embed = await tensor('model.embed_tokens.weight', 'embedding', null, [c.vocabSize, c.hiddenSize]);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < c.nLayers; i++) {
    const p = `model.layers.${i}.`;
    const bias = (name: string, n: number) => (c.qkvBias ? tensor(`${p}self_attn.${name}.bias`, 'bias', i, [n]) : Promise.resolve(null));
    layers.push({
      attnNorm: await tensor(`${p}input_layernorm.weight`, 'norm', i, [c.hiddenSize]),
      q: await load(`${p}self_attn.q_proj.weight`, 'linear', i, [q, c.hiddenSize]),
      qBias: await bias('q_proj', q),
      k: await load(`${p}self_attn.k_proj.weight`, 'linear', i, [kv, c.hiddenSize]),
      kBias: await bias('k_proj', kv),
      v: await load(`${p}self_attn.v_proj.weight`, 'linear', i, [kv, c.hiddenSize]),
      vBias: await bias('v_proj', kv),
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
