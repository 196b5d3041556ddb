import { LayeredKVCache, type Backend, type KVCache, type KVCacheLayer, type KVCacheSpec, type QuantizedKVLayout, type Tensor } from '@lithe/core';
import type { KvQuantFormat } from './format.js';
import { quantizeRow } from './quantize.js';
import { quantizeWebGpu, WEBGPU_MAX_HEAD_DIM } from './kernels/webgpu.js';

/**
 * One layer of a quantized cache: K and V codes [capacity, nKVHeads * headDim * bits / 8] and their
 * f16 parameters [capacity, nKVHeads * paramsPerHead] (scale, zero per KV head). It exposes no dense
 * `keys`/`values`: an attention kernel of its `kind` reads it, or one that reads core's
 * `quantized` description (flash-attn's).
 */
export class QuantizedKVLayer implements KVCacheLayer {
  readonly kind: string;
  length = 0;

  constructor(
    readonly format: KvQuantFormat,
    readonly nKVHeads: number,
    readonly headDim: number,
    readonly keyCodes: Tensor,
    readonly valueCodes: Tensor,
    readonly keyParams: Tensor,
    readonly valueParams: Tensor,
  ) {
    this.kind = format.kind;
  }

  /** Core's kind-independent description of this layer, for attention kernels outside kv-quant. */
  get quantized(): QuantizedKVLayout {
    const { bits, mode, paramsPerHead } = this.format;
    return { bits, mode, paramsPerHead, nKVHeads: this.nKVHeads, headDim: this.headDim, keyCodes: this.keyCodes, valueCodes: this.valueCodes, keyParams: this.keyParams, valueParams: this.valueParams };
  }

  get tensors(): Tensor[] {
    return [this.keyCodes, this.valueCodes, this.keyParams, this.valueParams];
  }
}

export function isQuantizedLayer(layer: KVCacheLayer): layer is QuantizedKVLayer {
  return layer instanceof QuantizedKVLayer;
}

/**
 * A KV cache stored in int8 or int4 from the start: every tensor is allocated once, in its quantized
 * dtype, at the size the pipeline asks for, and no full-precision copy of the cache ever exists.
 * Keys and values are quantized per token and per KV head as they are written.
 */
export class QuantizedKVCache extends LayeredKVCache<QuantizedKVLayer> {
  readonly kind: string;
  readonly format: KvQuantFormat;
  private readonly nKVHeads: number;
  private readonly headDim: number;
  private readonly width: number;
  private readonly b: Backend;

  constructor(spec: KVCacheSpec, format: KvQuantFormat) {
    super(spec);
    const where = spec.backend.name;
    // The wasm backend's tensors are typed-array views like the CPU's, so the CPU code runs on them.
    if (where !== 'cpu' && where !== 'wasm' && where !== 'webgpu') {
      throw new Error(`kv-quant: the '${where}' backend has no quantized KV kernels yet; use the cpu, wasm or webgpu backend, or drop kvQuant()`);
    }
    if (format.bits === 4 && spec.headDim % 2 !== 0) throw new Error(`kv-quant: int4 packs two values per byte and needs an even head dimension, got ${spec.headDim}`);
    if (where === 'webgpu') {
      // Codes and f16 parameters are read and written as whole 32-bit words.
      if (spec.headDim % 8 !== 0 || spec.headDim > WEBGPU_MAX_HEAD_DIM) throw new Error(`kv-quant (webgpu): the head dimension must be a multiple of 8 up to ${WEBGPU_MAX_HEAD_DIM}, got ${spec.headDim}`);
      if ((spec.nKVHeads * format.paramsPerHead) % 2 !== 0 || spec.nKVHeads > 64) {
        throw new Error(`kv-quant (webgpu): ${spec.nKVHeads} KV heads with ${format.mode} parameters do not fill whole 32-bit words; use mode 'asymmetric'`);
      }
    }
    this.kind = format.kind;
    this.format = format;
    this.nKVHeads = spec.nKVHeads;
    this.headDim = spec.headDim;
    this.width = spec.nKVHeads * spec.headDim;
    const b: Backend = spec.backend;
    this.b = b;
    const codeShape = [spec.capacity, (this.width * format.bits) / 8];
    const codeType = format.bits === 8 && format.mode === 'symmetric' ? 'i8' : 'u8';
    const paramShape = [spec.capacity, spec.nKVHeads * format.paramsPerHead];
    this.layers = Array.from(
      { length: spec.nLayers },
      () =>
        new QuantizedKVLayer(
          format,
          spec.nKVHeads,
          spec.headDim,
          b.allocate(codeShape, codeType, 'kv'),
          b.allocate(codeShape, codeType, 'kv'),
          b.allocate(paramShape, 'f16', 'kv'),
          b.allocate(paramShape, 'f16', 'kv'),
        ),
    );
  }

  /** Exact bytes held: codes, scales and zeros of every layer. */
  get bytes(): number {
    return this.layers.reduce((sum, l) => sum + l.tensors.reduce((s, t) => s + t.byteLength, 0), 0);
  }

  write(layer: number, keys: Tensor, values: Tensor): void {
    const l = this.layers[layer];
    if (!l) throw new RangeError(`KV cache has ${this.nLayers} layers, no layer ${layer}`);
    const tokens = keys.size / this.width;
    if (!Number.isInteger(tokens) || values.size !== keys.size) {
      throw new Error(`KV cache write: keys ${keys.size} and values ${values.size} values are not whole rows of ${this.width}`);
    }
    this.checkRoom(tokens);
    this.store(l, this.committed, keys, values);
    l.length = this.committed + tokens;
  }

  /** Quantizes rows into slots [slot, slot + T) without committing them (a ring buffer over this cache). */
  writeSlots(layer: number, slot: number, keys: Tensor, values: Tensor): void {
    const l = this.layers[layer];
    if (!l) throw new RangeError(`KV cache has ${this.nLayers} layers, no layer ${layer}`);
    const tokens = keys.size / this.width;
    if (!(Number.isInteger(tokens) && values.size === keys.size && Number.isSafeInteger(slot) && slot >= 0 && slot + tokens <= this.capacity)) {
      throw new RangeError(`KV cache slots [${slot}, ${slot + tokens}) are outside its ${this.capacity} slots, or keys and values are not whole rows of ${this.width}`);
    }
    this.store(l, slot, keys, values);
    l.length = Math.max(l.length, slot + tokens);
  }

  moveSlot(layer: number, from: number, to: number): void {
    for (const t of this.layers[layer].tensors) this.moveRow(this.b, t, from, to);
  }

  /**
   * Takes the first `tokens` tokens of another quantized cache of the same format and shape: its
   * codes and parameters are copied as they are (no requantization), so the prefix is bit-identical.
   */
  copyPrefix(source: KVCache, tokens: number): boolean {
    if (!(source instanceof QuantizedKVCache) || source === this || source.kind !== this.kind || source.b !== this.b) return false;
    if (source.width !== this.width || source.nKVHeads !== this.nKVHeads || source.nLayers !== this.nLayers) return false;
    if (!(Number.isSafeInteger(tokens) && tokens >= 0 && tokens <= source.length && tokens <= this.capacity)) {
      throw new RangeError(`copyPrefix: ${tokens} tokens, but the source holds ${source.length} and this cache ${this.capacity}`);
    }
    const b = this.b;
    this.layers.forEach((l, i) => {
      const from = source.layers[i].tensors;
      if (tokens > 0) {
        l.tensors.forEach((t, j) => {
          const width = t.shape[1];
          b.copy(b.view(from[j], [tokens, width], 0), t);
        });
      }
      l.length = tokens;
    });
    this.committed = tokens;
    return true;
  }

  private store(l: QuantizedKVLayer, slot: number, keys: Tensor, values: Tensor): void {
    if (keys.backend.name === 'webgpu') {
      quantizeWebGpu(this.format, keys, l.keyCodes, l.keyParams, slot, this.nKVHeads, this.headDim);
      quantizeWebGpu(this.format, values, l.valueCodes, l.valueParams, slot, this.nKVHeads, this.headDim);
    } else {
      this.quantizeInto(keys, l.keyCodes, l.keyParams, slot);
      this.quantizeInto(values, l.valueCodes, l.valueParams, slot);
    }
  }

  private quantizeInto(src: Tensor, codes: Tensor, params: Tensor, slot: number): void {
    if (src.dtype !== 'f32') throw new Error(`kv-quant: keys and values must be f32, got ${src.dtype}`);
    const x = src.handle as Float32Array;
    const c = codes.handle as Uint8Array | Int8Array;
    const p = params.handle as Uint16Array;
    const { headDim: D, nKVHeads: H, width, format } = this;
    const rowBytes = (width * format.bits) / 8;
    const headBytes = (D * format.bits) / 8;
    const pp = format.paramsPerHead;
    const tokens = src.size / width;
    for (let t = 0; t < tokens; t++) {
      const pos = slot + t;
      for (let h = 0; h < H; h++) {
        quantizeRow(format, x, t * width + h * D, D, c, pos * rowBytes + h * headBytes, p, (pos * H + h) * pp);
      }
    }
  }

  dispose(): void {
    for (const l of this.layers) for (const t of l.tensors) t.dispose();
  }
}
