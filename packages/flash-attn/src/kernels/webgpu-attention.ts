import { f32Bits, gpuOf, type AttentionParams, type KVCacheLayer, type Tensor, type WebGpuBackend } from '@lithe/core';
import { COMBINE_WGSL, SCORE_FLOATS, TILE_FLOATS, flashWgsl } from './webgpu-attention.wgsl.js';

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
  if (!cache.keys || !cache.values) return `the '${cache.kind}' KV cache has no dense keys and values`;
  if (cache.keys.dtype !== 'f32' && cache.keys.dtype !== 'f16') return `its ${cache.keys.dtype} keys (f32 and f16 only)`;
  if (cache.values.dtype !== cache.keys.dtype) return `keys in ${cache.keys.dtype} but values in ${cache.values.dtype}`;
  if (p.headDim > WEBGPU_FLASH_MAX_HEAD_DIM) return `head dim ${p.headDim} (WebGPU flash kernels take up to ${WEBGPU_FLASH_MAX_HEAD_DIM})`;
  const gpu = gpuOf(out);
  const width = p.nHeads * p.headDim;
  if (gpu.rowRuns(q.size / width, [[q, width], [out, width]]).length > 1) return 'queries split over several GPU buffers';
  return null;
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

/** Workgroups for n tiles: x up to 65535, then y. */
function layout(n: number): [number, number] {
  const y = Math.ceil(n / 65535);
  return [Math.ceil(n / y), y];
}

/** Flash attention over a dense f32 or f16 cache layer on WebGPU: core's kernel's inputs and results. */
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
  const kv = cache.keys!.dtype as 'f32' | 'f16';
  const kvType = kv === 'f16' ? 'u32' : 'f32';
  const [sq, so, sk, sv] = [gpu.at(q), gpu.at(out), gpu.at(cache.keys!), gpu.at(cache.values!)];
  const sp = gpu.at(partsFor(gpu, plan.nChunks > 1 ? rows * nHeads * plan.nChunks * (D + 2) : 64));
  const [nwgx, nwgy] = layout(plan.tiles);
  gpu.dispatch({
    key: `flash-attn:tiles:${kv}`,
    code: () => flashWgsl(kv),
    bindings: [
      { name: 'q', buf: sq.buf, type: 'f32' },
      { name: 'keys', buf: sk.buf, type: kvType },
      { name: 'values', buf: sv.buf, type: kvType },
      { name: 'out', buf: so.buf, type: 'f32', write: true },
      { name: 'parts', buf: sp.buf, type: 'f32', write: true },
    ],
    params: [rows, nHeads, nKVHeads, D, p.startPos, p.window ?? 0, nKVHeads * D, sq.offset, sk.offset, sv.offset, so.offset, f32Bits(p.scale), diag, plan.M, plan.BK, plan.chunkLen, plan.nChunks, sp.offset, nwgx],
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
