import type { WasmMemory } from './wasm-api.js';

/**
 * Blocks of a WasmMemory: a bump pointer that grows the memory, and free lists by size
 * class (sizes rounded up to 64 bytes, which is also every block's alignment). Model weights are
 * allocated once and activations are reused, so exact-size reuse covers nearly every free; a
 * request that does not fit below the memory's maximum takes the smallest larger free block.
 */
export const ALIGN = 64;
const PAGE = 65536;

export const align = (n: number, to = ALIGN): number => Math.ceil(n / to) * to;

export class WasmAllocator {
  private top: number;
  private readonly free = new Map<number, number[]>();
  private readonly live = new Map<number, number>();
  private freeBytes = 0;

  constructor(
    private readonly memory: WasmMemory,
    base: number,
    private readonly maxBytes: number,
  ) {
    this.top = align(base);
  }

  /** Bytes from the start of memory to the end of the highest block ever handed out. */
  get highWater(): number {
    return this.top;
  }

  /** Bytes in freed blocks waiting for reuse. */
  get freeListBytes(): number {
    return this.freeBytes;
  }

  /** The address of a zeroed block of at least `bytes` bytes, 64-byte aligned. */
  alloc(bytes: number): number {
    const size = align(Math.max(bytes, 1));
    let ptr = this.free.get(size)?.pop();
    if (ptr !== undefined) {
      this.freeBytes -= size;
      new Uint8Array(this.memory.buffer, ptr, size).fill(0);
    } else if (this.top + size <= this.maxBytes) {
      ptr = this.top;
      this.top += size;
      const have = this.memory.buffer.byteLength;
      // Fresh pages come zeroed.
      if (this.top > have) this.memory.grow(Math.ceil((this.top - have) / PAGE));
    } else {
      return this.takeLarger(size);
    }
    this.live.set(ptr, size);
    return ptr;
  }

  release(ptr: number): void {
    const size = this.live.get(ptr);
    if (size === undefined) throw new Error(`wasm memory: no live block at ${ptr} (freed twice?)`);
    this.live.delete(ptr);
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(ptr);
    this.freeBytes += size;
  }

  private takeLarger(size: number): number {
    let best = -1;
    for (const [s, list] of this.free) if (s >= size && list.length > 0 && (best < 0 || s < best)) best = s;
    if (best < 0) {
      const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
      throw new RangeError(
        `wasm memory is full: ${gib(size)} more would pass the ${gib(this.maxBytes)} a wasm32 module can address (${gib(this.top)} in use); ` +
          'use a smaller weight dtype (q8_0, q4_0, f16), a smaller KV cache, or the cpu backend',
      );
    }
    const ptr = this.free.get(best)!.pop()!;
    this.freeBytes -= best;
    this.live.set(ptr, best);
    new Uint8Array(this.memory.buffer, ptr, best).fill(0);
    return ptr;
  }
}
