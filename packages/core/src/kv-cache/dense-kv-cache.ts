import type { Backend } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import type { KVCache, KVCacheLayer, KVCacheSpec, KVDType } from './kv-cache.js';
import { LayeredKVCache } from './layered-kv-cache.js';

class DenseLayer implements KVCacheLayer {
  readonly kind = 'dense';
  length = 0;
  constructor(
    readonly keys: Tensor,
    readonly values: Tensor,
  ) {}
}

/**
 * The reference cache: keys and values [capacity, nKVHeads * headDim] per layer in f16 (default:
 * what llama.cpp and transformers keep; rounded to nearest even as they are written) or f32,
 * allocated once up front so memory does not grow while generating.
 */
export class DenseKVCache extends LayeredKVCache<DenseLayer> {
  readonly kind = 'dense';
  private readonly width: number;
  readonly dtype: KVDType;
  private readonly backend: Backend;
  private readonly store: (src: Tensor, dst: Tensor, offset: number) => void;

  constructor(spec: KVCacheSpec) {
    super(spec);
    this.width = spec.nKVHeads * spec.headDim;
    this.dtype = spec.dtype ?? 'f16';
    if (this.dtype !== 'f16' && this.dtype !== 'f32') throw new Error(`KV cache dtype must be 'f16' or 'f32', got '${String(this.dtype)}'`);
    const b = spec.backend;
    this.backend = b;
    this.store = this.dtype === 'f32' ? (src, dst, offset) => b.copy(src, dst, offset) : b.kernels.get(b.name, 'convert', this.dtype);
    const shape = [spec.capacity, this.width];
    this.layers = Array.from({ length: spec.nLayers }, () => new DenseLayer(b.allocate(shape, this.dtype, 'kv'), b.allocate(shape, this.dtype, 'kv')));
  }

  get bytes(): number {
    return this.layers.reduce((sum, l) => sum + l.keys.byteLength + l.values.byteLength, 0);
  }

  write(layer: number, keys: Tensor, values: Tensor): void {
    const l = this.layers[layer];
    const tokens = keys.size / this.width;
    this.checkRoom(tokens);
    const offset = this.committed * this.width;
    this.store(keys, l.keys, offset);
    this.store(values, l.values, offset);
    l.length = this.committed + tokens;
  }

  writeSlots(layer: number, slot: number, keys: Tensor, values: Tensor): void {
    const l = this.layers[layer];
    const tokens = keys.size / this.width;
    if (!(Number.isSafeInteger(slot) && slot >= 0 && slot + tokens <= this.capacity)) {
      throw new RangeError(`KV cache slots [${slot}, ${slot + tokens}) are outside its ${this.capacity} slots`);
    }
    this.store(keys, l.keys, slot * this.width);
    this.store(values, l.values, slot * this.width);
    l.length = Math.max(l.length, slot + tokens);
  }

  moveSlot(layer: number, from: number, to: number): void {
    const l = this.layers[layer];
    this.moveRow(this.backend, l.keys, from, to);
    this.moveRow(this.backend, l.values, from, to);
  }

  copyPrefix(source: KVCache, tokens: number): boolean {
    if (!(source instanceof DenseKVCache) || source === this || source.dtype !== this.dtype || source.width !== this.width || source.nLayers !== this.nLayers) return false;
    if (!(Number.isSafeInteger(tokens) && tokens >= 0 && tokens <= source.length && tokens <= this.capacity)) {
      throw new RangeError(`copyPrefix: ${tokens} tokens, but the source holds ${source.length} and this cache ${this.capacity}`);
    }
    const b = this.backend;
    this.layers.forEach((l, i) => {
      const from = source.layers[i];
      if (tokens > 0) {
        b.copy(b.view(from.keys, [tokens, this.width], 0), l.keys);
        b.copy(b.view(from.values, [tokens, this.width], 0), l.values);
      }
      l.length = tokens;
    });
    this.committed = tokens;
    return true;
  }

  dispose(): void {
    for (const l of this.layers) {
      l.keys.dispose();
      l.values.dispose();
    }
  }
}
