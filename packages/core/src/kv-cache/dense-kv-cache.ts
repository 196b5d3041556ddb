import type { Backend } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import type { KVCache, KVCacheLayer, KVCacheSpec } from './kv-cache.js';

class DenseLayer implements KVCacheLayer {
  readonly kind = 'dense';
  length = 0;
  constructor(
    readonly keys: Tensor,
    readonly values: Tensor,
  ) {}
}

/**
 * The reference cache: f32 keys and values, [capacity, nKVHeads * headDim] per layer, allocated
 * once up front so memory does not grow while generating.
 */
export class DenseKVCache implements KVCache {
  readonly kind = 'dense';
  readonly capacity: number;
  readonly nLayers: number;
  private readonly layers: DenseLayer[];
  private readonly width: number;
  private readonly backend: Backend;
  private committed = 0;

  constructor(spec: KVCacheSpec) {
    if (!(Number.isSafeInteger(spec.capacity) && spec.capacity > 0)) throw new RangeError(`KV cache size must be a positive integer, got ${spec.capacity}`);
    this.capacity = spec.capacity;
    this.nLayers = spec.nLayers;
    this.backend = spec.backend;
    this.width = spec.nKVHeads * spec.headDim;
    const shape = [spec.capacity, this.width];
    this.layers = Array.from(
      { length: spec.nLayers },
      () => new DenseLayer(spec.backend.allocate(shape, 'f32', 'kv'), spec.backend.allocate(shape, 'f32', 'kv')),
    );
  }

  get length(): number {
    return this.committed;
  }

  get bytes(): number {
    return this.layers.reduce((sum, l) => sum + l.keys.byteLength + l.values.byteLength, 0);
  }

  layer(index: number): KVCacheLayer {
    return this.layers[index];
  }

  write(layer: number, keys: Tensor, values: Tensor): void {
    const l = this.layers[layer];
    const tokens = keys.size / this.width;
    if (this.committed + tokens > this.capacity) {
      throw new RangeError(`KV cache is full: ${this.committed} + ${tokens} tokens exceed its size of ${this.capacity}; raise the cache size`);
    }
    const offset = this.committed * this.width;
    this.backend.copy(keys, l.keys, offset);
    this.backend.copy(values, l.values, offset);
    l.length = this.committed + tokens;
  }

  commit(tokens: number): void {
    const next = this.committed + tokens;
    for (const l of this.layers) if (l.length !== next) throw new Error(`KV cache commit of ${tokens} tokens, but a layer holds ${l.length - this.committed}`);
    this.committed = next;
  }

  truncate(length: number): void {
    if (!(Number.isSafeInteger(length) && length >= 0 && length <= this.committed)) {
      throw new RangeError(`cannot truncate the KV cache to ${length} tokens: it holds ${this.committed}`);
    }
    this.committed = length;
    for (const l of this.layers) l.length = length;
  }

  reset(): void {
    this.truncate(0);
  }

  dispose(): void {
    for (const l of this.layers) {
      l.keys.dispose();
      l.values.dispose();
    }
  }
}
