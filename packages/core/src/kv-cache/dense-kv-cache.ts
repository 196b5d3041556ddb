import type { Backend } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import type { KVCacheLayer, KVCacheSpec } from './kv-cache.js';
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
 * The reference cache: f32 keys and values, [capacity, nKVHeads * headDim] per layer, allocated
 * once up front so memory does not grow while generating.
 */
export class DenseKVCache extends LayeredKVCache<DenseLayer> {
  readonly kind = 'dense';
  private readonly width: number;
  private readonly backend: Backend;

  constructor(spec: KVCacheSpec) {
    super(spec);
    this.backend = spec.backend;
    this.width = spec.nKVHeads * spec.headDim;
    const shape = [spec.capacity, this.width];
    this.layers = Array.from(
      { length: spec.nLayers },
      () => new DenseLayer(spec.backend.allocate(shape, 'f32', 'kv'), spec.backend.allocate(shape, 'f32', 'kv')),
    );
  }

  get bytes(): number {
    return this.layers.reduce((sum, l) => sum + l.keys.byteLength + l.values.byteLength, 0);
  }

  write(layer: number, keys: Tensor, values: Tensor): void {
    const l = this.layers[layer];
    const tokens = keys.size / this.width;
    this.checkRoom(tokens);
    const offset = this.committed * this.width;
    this.backend.copy(keys, l.keys, offset);
    this.backend.copy(values, l.values, offset);
    l.length = this.committed + tokens;
  }

  dispose(): void {
    for (const l of this.layers) {
      l.keys.dispose();
      l.values.dispose();
    }
  }
}
