import type { AttentionParams, KVCacheLayer, Tensor, WasmBackend, WasmKernels } from '@lithe/core';
import { FLASH_RELAXED_WASM_BASE64, FLASH_WASM_BASE64 } from './flash-wasm.js';

const OPS = ['flash_f32', 'flash_f16', 'flash_q8a', 'flash_q8s', 'flash_q4a', 'flash_q4s', 'flash_combine', 'flash_scratch_bytes'] as const;

/** Keys per block (BK in wasm/flash.ts): chunk lengths are multiples of it. */
const BLOCK_KEYS = 32;
/** Query vectors per tile (rows × the heads of one KV group), as many as the tile's scratch stays in L1 for. */
const TILE_QUERIES = 32;
/** A decode chunk holds at least this many keys: shorter ones cost more in merging than they gain. */
const MIN_CHUNK = 256;
/** Tiles per thread the split aims for, so a late or slow thread does not hold the others up. */
const TILES_PER_THREAD = 16;

/** How one call is cut into tiles (see wasm/flash.ts). */
export interface FlashPlan {
  /** Query rows per tile. */
  qBlock: number;
  /** Key chunks per (KV head, query block): 1 for prefill, more for split-K decoding. */
  nChunks: number;
  /** Keys per chunk (a multiple of the key block). */
  chunkLen: number;
  /** Tiles: nKVHeads × query blocks × chunks. */
  tiles: number;
}

/** The tiling for `rows` query rows at `p` on `threads` threads. */
export function flashPlan(rows: number, p: AttentionParams, threads: number): FlashPlan {
  const group = p.nHeads / p.nKVHeads;
  const qBlock = Math.max(1, Math.floor(TILE_QUERIES / group));
  const nQB = Math.ceil(rows / qBlock);
  const diag = p.noDiagonal ? 1 : 0;
  // The widest key range of any tile: from the first row's window start to the last row's position.
  const lo = p.window ? Math.max(0, p.startPos - p.window + 1) : 0;
  const span = Math.max(1, p.startPos + rows - diag - lo);
  const base = p.nKVHeads * nQB;
  const wanted = Math.ceil((threads * TILES_PER_THREAD) / base);
  let nChunks = threads > 1 ? Math.max(1, Math.min(wanted, Math.floor(span / MIN_CHUNK))) : 1;
  const chunkLen = Math.ceil(Math.ceil(span / nChunks) / BLOCK_KEYS) * BLOCK_KEYS;
  nChunks = Math.ceil(span / chunkLen);
  return { qBlock, nChunks, chunkLen, tiles: base * nChunks };
}

/** Why the wasm flash kernel cannot run a call, or null when it can. */
export function flashUnsupported(cache: KVCacheLayer, p: AttentionParams): string | null {
  const qz = cache.quantized;
  if (qz) {
    if (qz.nKVHeads !== p.nKVHeads || qz.headDim !== p.headDim) return `a quantized '${cache.kind}' layer of ${qz.nKVHeads} KV heads × ${qz.headDim} for params of ${p.nKVHeads} × ${p.headDim}`;
    if (qz.bits !== 8 && qz.bits !== 4) return `${String(qz.bits)}-bit codes (8 and 4 only)`;
    if (qz.paramsPerHead !== (qz.mode === 'symmetric' ? 1 : 2)) return `${qz.paramsPerHead} parameters per head in ${qz.mode} mode`;
    if (p.headDim % 4 !== 0) return `head dim ${p.headDim} (a multiple of 4 is needed)`;
    return null;
  }
  if (!cache.keys || !cache.values) return `the '${cache.kind}' KV cache has no dense keys and values`;
  if (cache.keys.dtype !== 'f32' && cache.keys.dtype !== 'f16') return `its ${cache.keys.dtype} keys (f32 and f16 only)`;
  if (cache.values.dtype !== cache.keys.dtype) return `keys in ${cache.keys.dtype} but values in ${cache.values.dtype}`;
  if (p.headDim % 4 !== 0) return `head dim ${p.headDim} (a multiple of 4 is needed)`;
  return null;
}

/**
 * The flash-attention kernels loaded into one WasmBackend: `attention` takes exactly the inputs of
 * core's attention kernel (a dense f32 or f16 cache layer, or a block-quantized int8 / int4 layer
 * described by `KVCacheLayer.quantized`, dequantized block by block in the tile; causal, GQA, sliding
 * window, the masked diagonal) and runs the tiles on the backend's thread pool.
 */
export class FlashWasm {
  private parts: Tensor | null = null;

  private constructor(
    private readonly backend: WasmBackend,
    private readonly k: WasmKernels,
    /** Which build of the kernels runs: the backend's own choice of SIMD128 or relaxed SIMD. */
    readonly simd: WasmBackend['simd'],
  ) {}

  static async load(backend: WasmBackend): Promise<FlashWasm> {
    // The relaxed-SIMD build (fused multiply-adds) where the backend runs core's relaxed build: the
    // runtime validated relaxed SIMD there and passed the backend's self-test.
    const base64 = backend.simd === 'relaxed-simd' ? FLASH_RELAXED_WASM_BASE64 : FLASH_WASM_BASE64;
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return new FlashWasm(backend, await backend.loadKernels('flash-attn', bytes, OPS), backend.simd);
  }

  attention(q: Tensor, cache: KVCacheLayer, p: AttentionParams, out: Tensor): void {
    const why = flashUnsupported(cache, p);
    if (why) throw new Error(`flash attention cannot read ${why}`);
    const { nHeads, nKVHeads, headDim } = p;
    if (nHeads % nKVHeads !== 0) throw new Error(`flash attention: ${nHeads} query heads are not a multiple of ${nKVHeads} KV heads`);
    const rows = q.size / (nHeads * headDim);
    if (!Number.isInteger(rows) || out.size !== q.size) throw new Error(`flash attention: q ${q} and out ${out} are not rows of ${nHeads} heads of ${headDim}`);
    const diag = p.noDiagonal ? 1 : 0;
    if (p.startPos + rows - diag > cache.length) throw new Error(`attention: cache holds ${cache.length} tokens, queries reach ${p.startPos + rows - diag}`);
    if (rows === 0) return;
    const plan = flashPlan(rows, p, this.backend.threads);
    const a = (t: Tensor) => this.k.address(t);
    const parts = plan.nChunks > 1 ? a(this.partsFor(rows * nHeads * plan.nChunks * (headDim + 4))) : 0;
    const group = nHeads / nKVHeads;
    const scratch = this.k.exports.flash_scratch_bytes(plan.qBlock * group, headDim) as number;
    const qz = cache.quantized;
    const op = qz ? (`flash_q${qz.bits}${qz.mode === 'symmetric' ? 's' : 'a'}` as const) : cache.keys!.dtype === 'f16' ? 'flash_f16' : 'flash_f32';
    const [k, v] = qz ? [qz.keyCodes, qz.valueCodes] : [cache.keys!, cache.values!];
    const head = [a(q), a(k), a(v), a(out), parts, rows, nHeads, nKVHeads, headDim, p.scale, p.startPos];
    // Quantized tiles take the f16 scales (and zeros) of K and V too, so they pack window with the
    // diagonal flag and qBlock with nChunks to stay within the pool's 16 arguments.
    const args = qz
      ? [...head, (p.window ?? 0) * 2 + diag, plan.qBlock | (plan.nChunks << 16), plan.chunkLen, a(qz.keyParams), a(qz.valueParams)]
      : [...head, p.window ?? 0, diag, plan.qBlock, plan.chunkLen, plan.nChunks];
    const work = rows * nHeads * Math.min(p.startPos + rows, p.window ?? Infinity) * headDim * 2;
    this.k.parallelFor(op, args, plan.tiles, 1, scratch, work);
    if (plan.nChunks > 1) this.k.exports.flash_combine(parts, a(out), plan.nChunks, headDim, 0, rows * nHeads, 0);
  }

  /** The chunks' partial results: one reused block, grown when a call needs more. */
  private partsFor(floats: number): Tensor {
    if (!this.parts || this.parts.size < floats) {
      if (this.parts) this.backend.dispose(this.parts);
      this.parts = this.backend.allocate([Math.max(floats, Math.ceil((this.parts?.size ?? 0) * 1.5))], 'f32', 'other');
    }
    return this.parts;
  }
}
