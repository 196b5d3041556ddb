import type { Backend } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import type { KVCache, KVCacheLayer, KVCacheSpec } from './kv-cache.js';

/**
 * What every preallocated per-layer cache shares: the size check, and the bookkeeping of how many
 * tokens are committed and written per layer (commit, truncate for rollback, reset). Subclasses
 * allocate their layers and say how keys and values are stored.
 */
export abstract class LayeredKVCache<L extends KVCacheLayer & { length: number }> implements KVCache {
  abstract readonly kind: string;
  abstract readonly bytes: number;
  readonly capacity: number;
  readonly nLayers: number;
  protected layers: L[] = [];
  protected committed = 0;

  constructor(spec: KVCacheSpec) {
    if (!(Number.isSafeInteger(spec.capacity) && spec.capacity > 0)) throw new RangeError(`KV cache size must be a positive integer, got ${spec.capacity}`);
    this.capacity = spec.capacity;
    this.nLayers = spec.nLayers;
  }

  abstract write(layer: number, keys: Tensor, values: Tensor): void;
  abstract dispose(): void;

  get length(): number {
    return this.committed;
  }

  layer(index: number): L {
    return this.layers[index];
  }

  /** Throws unless `tokens` more fit after the committed ones. */
  protected checkRoom(tokens: number): void {
    if (this.committed + tokens > this.capacity) {
      throw new RangeError(`KV cache is full: ${this.committed} + ${tokens} tokens exceed its size of ${this.capacity}; raise the cache size`);
    }
  }

  /**
   * Copies row `from` of a [capacity, width] tensor over row `to`, through a one-row buffer (a GPU
   * copy may not read and write one buffer). For `moveSlot`.
   */
  protected moveRow(backend: Backend, t: Tensor, from: number, to: number): void {
    const [rows, width] = t.shape;
    if (!(Number.isSafeInteger(from) && Number.isSafeInteger(to) && from >= 0 && to >= 0 && from < rows && to < rows)) {
      throw new RangeError(`KV cache slots ${from} and ${to} must both be below ${rows}`);
    }
    const row = backend.allocate([1, width], t.dtype, 'other');
    backend.copy(backend.view(t, [1, width], from * width), row);
    backend.copy(row, t, to * width);
    row.dispose();
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
}
