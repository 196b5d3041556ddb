import { f32Bits, gpuOf, type AttentionParams, type KVCacheLayer, type QuantizedKVLayout, type Tensor, type TensorBinding, type WebGpuBackend } from '@lithe/core';
import { COMBINE_WGSL, SCORE_FLOATS, TILE_FLOATS, flashWgsl, type WebGpuFlashKind } from './webgpu-attention.wgsl.js';

/** Largest head dim: one key row and one query vector per shared tile at the least. */
export const WEBGPU_FLASH_MAX_HEAD_DIM = 256;
/** A decode chunk holds at least this many keys. */
const MIN_CHUNK = 256;
/** Workgroups the split aims for, so that a GPU's cores all have work in decode. */
const TARGET_WORKGROUPS = 256;

export interface WebGpuFlashPlan {
  /** Query vectors per tile. */
  M: number;
  /** Keys per block. */
  BK: number;
  nChunks: number;
  chunkLen: number;
  tiles: number;
}

/** The tiling of a call on the GPU (tile sizes from the shared-memory budget). */
export function webGpuFlashPlan(rows: number, p: AttentionParams): WebGpuFlashPlan {
  const group = p.nHeads / p.nKVHeads;
  const BK = Math.min(32, Math.floor(TILE_FLOATS / p.headDim));
  const M = Math.min(64, Math.floor(TILE_FLOATS / p.headDim), Math.floor(SCORE_FLOATS / BK), rows * group);
  const nVB = Math.ceil((rows * group) / M);
  const lo = p.window ? Math.max(0, p.startPos - p.window + 1) : 0;
  const span = Math.max(1, p.startPos + rows - (p.noDiagonal ? 1 : 0) - lo);
  const base = p.nKVHeads * nVB;
  let nChunks = Math.max(1, Math.min(Math.ceil(TARGET_WORKGROUPS / base), Math.floor(span / MIN_CHUNK)));
  const chunkLen = Math.ceil(Math.ceil(span / nChunks) / BK) * BK;
  nChunks = Math.ceil(span / chunkLen);
  return { M, BK, nChunks, chunkLen, tiles: base * nChunks };
}

/** Why the WebGPU flash kernel cannot run a call, or null. */
export function webGpuFlashUnsupported(q: Tensor, cache: KVCacheLayer, p: AttentionParams, out: Tensor): string | null {
  const gpu = gpuOf(out);
  const qz = cache.quantized;
  if (qz) {
    const why = quantizedUnsupported(gpu, cache.kind, qz, p);
    if (why) return why;
  } else {
    if (!cache.keys || !cache.values) return `the '${cache.kind}' KV cache has no dense keys and values`;
    if (cache.keys.dtype !== 'f32' && cache.keys.dtype !== 'f16') return `its ${cache.keys.dtype} keys (f32 and f16 only)`;
    if (cache.values.dtype !== cache.keys.dtype) return `keys in ${cache.keys.dtype} but values in ${cache.values.dtype}`;
  }
  if (p.headDim > WEBGPU_FLASH_MAX_HEAD_DIM) return `head dim ${p.headDim} (WebGPU flash kernels take up to ${WEBGPU_FLASH_MAX_HEAD_DIM})`;
  const width = p.nHeads * p.headDim;
  if (gpu.rowRuns(q.size / width, [[q, width], [out, width]]).length > 1) return 'queries split over several GPU buffers';
  return null;
}

/** The quantized layer's own checks: a layout the load functions decode, each tensor in one buffer. */
function quantizedUnsupported(gpu: WebGpuBackend, kind: string, qz: QuantizedKVLayout, p: AttentionParams): string | null {
  if (qz.nKVHeads !== p.nKVHeads || qz.headDim !== p.headDim) return `a quantized '${kind}' layer of ${qz.nKVHeads} KV heads × ${qz.headDim} for params of ${p.nKVHeads} × ${p.headDim}`;
  if (qz.bits !== 8 && qz.bits !== 4) return `${String(qz.bits)}-bit codes (8 and 4 only)`;
  if (qz.paramsPerHead !== (qz.mode === 'symmetric' ? 1 : 2)) return `${qz.paramsPerHead} parameters per head in ${qz.mode} mode`;
  if (qz.bits === 4 && p.headDim % 2 !== 0) return `int4 codes of an odd head dim ${p.headDim}`;
  for (const t of [qz.keyCodes, qz.valueCodes]) if (t.dtype !== 'u8' && t.dtype !== 'i8') return `quantized codes stored as ${t.dtype} (u8 / i8 only)`;
  for (const t of [qz.keyParams, qz.valueParams]) if (t.dtype !== 'f16') return `quantization parameters stored as ${t.dtype} (f16 only)`;
  const tensors = [qz.keyCodes, qz.valueCodes, qz.keyParams, qz.valueParams];
  // The shader reads one binding per tensor, addressed by code (a nibble for int4) with a u32 index.
  if (tensors.some((t) => gpu.range(t, 0, t.size).length > 1)) return `a quantized '${kind}' layer split over several GPU buffers`;
  if (qz.bits === 4 && [qz.keyCodes, qz.valueCodes].some((t) => 2 * (gpu.at(t).offset + t.size) > 2 ** 32)) return 'int4 codes past 2^31 bytes into a buffer';
  return null;
}

/** The load variant of the tile shader for a layer (see webgpu-attention.wgsl.ts). */
function kindOf(cache: KVCacheLayer): WebGpuFlashKind {
  const qz = cache.quantized;
  if (qz) return `q${qz.bits}${qz.mode === 'symmetric' ? 's' : 'a'}`;
  return cache.keys!.dtype as 'f32' | 'f16';
}

const parts = new WeakMap<WebGpuBackend, Tensor>();

function partsFor(gpu: WebGpuBackend, floats: number): Tensor {
  let t = parts.get(gpu);
  if (!t || t.size < floats) {
    if (t) gpu.dispose(t);
    t = gpu.allocate([Math.max(floats, 64, Math.ceil((t?.size ?? 0) * 1.5))], 'f32', 'other');
    parts.set(gpu, t);
  }
  return t;
}

interface CacheBindings {
  bindings: TensorBinding[];
  /** Offsets of keys and values (in their bindings' units) and of the f16 parameters (halves). */
  k: number;
  v: number;
  kp: number;
  vp: number;
}

function denseBindings(gpu: WebGpuBackend, cache: KVCacheLayer): CacheBindings {
  const type = cache.keys!.dtype === 'f16' ? 'u32' : 'f32';
  const [sk, sv] = [gpu.at(cache.keys!), gpu.at(cache.values!)];
  return {
    bindings: [
      { name: 'keys', buf: sk.buf, type },
      { name: 'values', buf: sv.buf, type },
    ],
    k: sk.offset,
    v: sv.offset,
    kp: 0,
    vp: 0,
  };
}

/** Codes and parameters bound as u32 words; code offsets counted in codes (bytes, or nibbles for int4). */
function quantizedBindings(gpu: WebGpuBackend, qz: QuantizedKVLayout): CacheBindings {
  const [kc, vc, kp, vp] = [gpu.at(qz.keyCodes), gpu.at(qz.valueCodes), gpu.at(qz.keyParams), gpu.at(qz.valueParams)];
  const perByte = 8 / qz.bits;
  return {
    bindings: [
      { name: 'keys', buf: kc.buf, type: 'u32' },
      { name: 'values', buf: vc.buf, type: 'u32' },
      { name: 'kp', buf: kp.buf, type: 'u32' },
      { name: 'vp', buf: vp.buf, type: 'u32' },
    ],
    k: kc.offset * perByte,
    v: vc.offset * perByte,
    kp: kp.offset,
    vp: vp.offset,
  };
}

/** Workgroups for n tiles: x up to 65535, then y. */
function layout(n: number): [number, number] {
  const y = Math.ceil(n / 65535);
  return [Math.ceil(n / y), y];
}

/**
 * Flash attention on WebGPU, core's kernel's inputs and results: over a dense f32 or f16 cache
 * layer, or a block-quantized one (`KVCacheLayer.quantized`: kv-quant's int8 / int4 codes and f16
 * scales and zeros), dequantized block by block as the tile loads it.
 */
export function attentionFlashWebGpu(q: Tensor, cache: KVCacheLayer, p: AttentionParams, out: Tensor): void {
  const why = webGpuFlashUnsupported(q, cache, p, out);
  if (why) throw new Error(`flash attention (webgpu) cannot read ${why}`);
  const gpu = gpuOf(out);
  const { nHeads, nKVHeads, headDim: D } = p;
  if (nHeads % nKVHeads !== 0) throw new Error(`flash attention: ${nHeads} query heads are not a multiple of ${nKVHeads} KV heads`);
  const rows = q.size / (nHeads * D);
  const diag = p.noDiagonal ? 1 : 0;
  if (p.startPos + rows - diag > cache.length) throw new Error(`attention: cache holds ${cache.length} tokens, queries reach ${p.startPos + rows - diag}`);
  if (rows === 0) return;
  const plan = webGpuFlashPlan(rows, p);
  const kind = kindOf(cache);
  const qz = cache.quantized;
  const [sq, so] = [gpu.at(q), gpu.at(out)];
  const sp = gpu.at(partsFor(gpu, plan.nChunks > 1 ? rows * nHeads * plan.nChunks * (D + 2) : 64));
  const cacheBindings = qz ? quantizedBindings(gpu, qz) : denseBindings(gpu, cache);
  const [nwgx, nwgy] = layout(plan.tiles);
  gpu.dispatch({
    key: `flash-attn:tiles:${kind}`,
    code: () => flashWgsl(kind),
    bindings: [
      { name: 'q', buf: sq.buf, type: 'f32' },
      ...cacheBindings.bindings,
      { name: 'out', buf: so.buf, type: 'f32', write: true },
      { name: 'parts', buf: sp.buf, type: 'f32', write: true },
    ],
    params: [rows, nHeads, nKVHeads, D, p.startPos, p.window ?? 0, nKVHeads * D, sq.offset, cacheBindings.k, cacheBindings.v, so.offset, f32Bits(p.scale), diag, plan.M, plan.BK, plan.chunkLen, plan.nChunks, sp.offset, nwgx, cacheBindings.kp, cacheBindings.vp],
    workgroups: [nwgx, nwgy],
  });
  if (plan.nChunks === 1) return;
  const vectors = rows * nHeads;
  const [cx, cy] = layout(vectors);
  gpu.dispatch({
    key: 'flash-attn:combine',
    code: COMBINE_WGSL,
    bindings: [
      { name: 'parts', buf: sp.buf, type: 'f32' },
      { name: 'out', buf: so.buf, type: 'f32', write: true },
    ],
    params: [vectors, D, plan.nChunks, sp.offset, so.offset, cx],
    workgroups: [cx, cy],
  });
}
