import { ropeInvFrequencies, type AttentionParams, type Backend, type KVCache, type KVCacheLayer, type KernelSignatures, type PluginContext, type Tensor } from '@lithe/core';

/** The cache kind (and attention kernel variant) of a StreamingLLM cache. */
export const STREAMING_KIND = 'streaming';

export interface StreamingOptions {
  /** Tokens at the start of the stream kept for ever, the attention sinks (default 4). */
  sinks?: number;
  /** Most recent tokens kept besides the sinks: the rolling window. */
  window: number;
  /**
   * Evicted tokens kept aside so that a rollback (speculative decoding's `truncate`) brings back the
   * ones its dropped tokens evicted, leaving the cache as if they had never been written (default 16;
   * 0 for none). Each costs one slot of the cache underneath.
   */
  rollback?: number;
}

/** Options with their defaults applied, checked. */
export function resolveStreamingOptions(options: StreamingOptions): Required<StreamingOptions> {
  const sinks = options?.sinks ?? 4;
  const window = options?.window;
  const rollback = options?.rollback ?? 16;
  if (!(Number.isSafeInteger(sinks) && sinks >= 0)) throw new RangeError(`streaming: sinks must be a non-negative integer, got ${String(sinks)}`);
  if (!(Number.isSafeInteger(window) && window >= 1)) throw new RangeError(`streaming: window must be a positive integer (tokens kept besides the sinks), got ${String(window)}`);
  if (!(Number.isSafeInteger(rollback) && rollback >= 0)) throw new RangeError(`streaming: rollback must be a non-negative integer (evicted tokens a rollback can restore), got ${String(rollback)}`);
  return { sinks, window, rollback };
}

/**
 * One layer as the model sees it: `length` counts the stream, and attention runs over the slots of
 * the cache underneath (`inner`), whose keys are rotated so that every score sees its StreamingLLM
 * distance. Only the streaming attention kernel reads it.
 */
export class StreamingLayer implements KVCacheLayer {
  readonly kind = STREAMING_KIND;
  length = 0;
  /** Slots [0, visible) of the inner layer hold the kept tokens after this layer's last write. */
  visible = 0;
  private readonly params: AttentionParams = { nHeads: 0, nKVHeads: 0, headDim: 0, scale: 1, startPos: 0 };

  constructor(
    readonly inner: KVCacheLayer,
    private readonly kernel: KernelSignatures['attention'],
  ) {}

  /**
   * Attention over exactly the kept tokens. Softmax does not care about the order of the keys, and the
   * rotations already carry the positions, so the inner cache's own kernel reads the slots as a plain
   * prefix: the new rows are the last `rows` slots in order (chunks never evict, see writeLimit) and
   * every earlier slot is visible to each of them.
   *
   * A layer can also be read before this step has written it (LCKV: a layer reading the KV of a layer
   * above it, with `noDiagonal`). Its slots then hold the tokens before the new rows, which would
   * follow them: such a read sees the sinks and the `window` tokens before the current one.
   */
  attend(q: Tensor, p: AttentionParams, out: Tensor): void {
    const rows = q.size / (p.nHeads * p.headDim);
    const written = this.length > p.startPos;
    const params = this.params;
    params.nHeads = p.nHeads;
    params.nKVHeads = p.nKVHeads;
    params.headDim = p.headDim;
    params.scale = p.scale;
    params.noDiagonal = p.noDiagonal;
    params.startPos = written ? this.visible - rows : this.visible;
    this.kernel(q, this.inner, params, out);
  }
}

/**
 * A StreamingLLM KV cache (Xiao et al., 2024): the first `sinks` tokens and a ring of the last
 * `window`, in `sinks + window` slots of a cache underneath (core's dense one, or kv-quant's quantized
 * one), allocated once. Eviction is one slot overwrite per token.
 *
 * Positions: a key's distance to a query must be its distance in [sinks | window]. Window keys are
 * rotated at their position in the stream (what the model gives them) and never touched again: the
 * window is a contiguous run of the stream, so stream distances inside it are cache distances. Only
 * the sinks' distance to new tokens shrinks as tokens are evicted, so after each eviction the sink keys
 * are re-rotated from a kept copy by the number of evicted tokens: O(sinks) per token, never O(window).
 */
export class StreamingKVCache implements KVCache {
  readonly kind = STREAMING_KIND;
  readonly unbounded = true;
  /** Slots: sinks + window. */
  readonly capacity: number;
  readonly nLayers: number;
  readonly sinks: number;
  readonly window: number;
  /** Evicted tokens kept for rollback, in the inner cache's slots after `capacity` (a ring by eviction number). */
  readonly rollback: number;
  private readonly layers: StreamingLayer[];
  private readonly width: number;
  private readonly backend: Backend;
  private readonly rope: KernelSignatures['rope'];
  private readonly invFreq: Float32Array;
  /** Sink keys as first rotated (at positions 0..sinks-1) and sink values, per layer; [sinks, width] f32. */
  private readonly sinkKeys: Tensor[] = [];
  private readonly sinkValues: Tensor[] = [];
  private readonly scratch: Tensor | null = null;
  private readonly shiftPositions: Int32Array;
  /** Evicted tokens the sink keys of each layer are currently rotated for. */
  private readonly sinkShift: number[];
  /** Window slots in age order: a ring of `window` entries from `head`, `held` of them in use. */
  private readonly order: Int32Array;
  private head = 0;
  private held = 0;
  private committed = 0;
  /** How many of the latest evictions the rollback slots hold. */
  private stashed = 0;

  constructor(
    private readonly inner: KVCache,
    ctx: PluginContext,
    options: StreamingOptions,
  ) {
    const { sinks, window, rollback } = resolveStreamingOptions(options);
    const c = ctx.config;
    if (!inner.writeSlots) {
      throw new Error(`streaming: the '${inner.kind}' KV cache it would wrap cannot be written out of order (it has no writeSlots); use core's dense cache or kv-quant, or drop streaming()`);
    }
    if (rollback > 0 && !inner.moveSlot) {
      throw new Error(`streaming: the '${inner.kind}' KV cache it would wrap cannot move slots (moveSlot), which rollback needs; use rollback: 0`);
    }
    if (inner.capacity < sinks + window + rollback) {
      throw new RangeError(`streaming: the cache underneath has ${inner.capacity} slots, fewer than sinks + window + rollback = ${sinks + window + rollback}`);
    }
    if (c.slidingWindow && window > c.slidingWindow) {
      throw new RangeError(`streaming: window ${window} exceeds the model's sliding window of ${c.slidingWindow} tokens; use --window ${c.slidingWindow} or less`);
    }
    // Per-layer windows (LCKV's 's' layers) count in stream order, which the ring's slots are not in.
    const layerWindow = c.kvLayerMap?.window.findIndex((w) => w !== null && window > w) ?? -1;
    if (layerWindow >= 0) {
      const w = c.kvLayerMap!.window[layerWindow]!;
      throw new RangeError(`streaming: window ${window} exceeds layer ${layerWindow}'s sliding window of ${w} tokens; use --window ${w} or less`);
    }
    this.sinks = sinks;
    this.window = window;
    this.rollback = rollback;
    this.capacity = sinks + window;
    this.nLayers = inner.nLayers;
    this.backend = ctx.backend;
    this.width = c.nKVHeads * c.headDim;
    this.rope = ctx.kernels.get(ctx.backend.name, 'rope');
    this.invFreq = ropeInvFrequencies(c);
    this.shiftPositions = new Int32Array(sinks);
    this.sinkShift = new Array<number>(inner.nLayers).fill(0);
    this.order = new Int32Array(window);
    const innerKind = inner.layer(0).kind;
    if (!ctx.kernels.has(ctx.backend.name, 'attention', innerKind)) {
      throw new Error(`streaming: no '${innerKind}' attention kernel on the ${ctx.backend.name} backend for the cache underneath`);
    }
    const kernel = ctx.kernels.get(ctx.backend.name, 'attention', innerKind);
    this.layers = Array.from({ length: inner.nLayers }, (_, l) => new StreamingLayer(inner.layer(l), kernel));
    if (sinks > 0) {
      for (let l = 0; l < this.nLayers; l++) {
        this.sinkKeys.push(this.backend.allocate([sinks, this.width], 'f32', 'kv'));
        this.sinkValues.push(this.backend.allocate([sinks, this.width], 'f32', 'kv'));
      }
      this.scratch = this.backend.allocate([sinks, this.width], 'f32', 'kv');
    }
  }

  /** Tokens fed so far, evicted ones included (the position of the next token in the stream). */
  get length(): number {
    return this.committed;
  }

  /** Tokens currently kept: sinks and window. */
  get kept(): number {
    return Math.min(this.committed, this.sinks) + this.held;
  }

  /** Tokens evicted so far. */
  get evicted(): number {
    return this.committed - this.kept;
  }

  /** Bytes held: the slots underneath (rollback's included), plus the sinks' kept copy and scratch (f32). */
  get bytes(): number {
    const own = [...this.sinkKeys, ...this.sinkValues, ...(this.scratch ? [this.scratch] : [])];
    return this.inner.bytes + own.reduce((s, t) => s + t.byteLength, 0);
  }

  layer(index: number): StreamingLayer {
    return this.layers[index];
  }

  /**
   * Tokens the next chunk may hold: all free slots while the cache fills, then one at a time, so
   * that each token attends to exactly the sinks and its own window (a chunk that evicted would
   * hide from its first rows tokens they should see).
   */
  writeLimit(): number {
    return Math.max(1, this.capacity - this.kept);
  }

  write(layer: number, keys: Tensor, values: Tensor): void {
    const l = this.layers[layer];
    if (!l) throw new RangeError(`KV cache has ${this.nLayers} layers, no layer ${layer}`);
    const T = keys.size / this.width;
    if (!Number.isInteger(T) || T < 1 || values.size !== keys.size) {
      throw new Error(`KV cache write: keys ${keys.size} and values ${values.size} values are not whole rows of ${this.width}`);
    }
    if (T > this.writeLimit()) throw new RangeError(`streaming KV cache: a write of ${T} tokens would evict tokens its own rows attend to; write at most writeLimit() = ${this.writeLimit()}`);
    const inner = this.inner;
    const n0 = this.committed;
    // Sinks first: stored as given (rotated at their own positions) and kept for re-rotation.
    const toSinks = Math.max(0, Math.min(T, this.sinks - n0));
    if (toSinks > 0) {
      const k = this.rows(keys, 0, toSinks);
      const v = this.rows(values, 0, toSinks);
      inner.writeSlots!(layer, n0, k, v);
      this.backend.copy(k, this.sinkKeys[layer], n0 * this.width);
      this.backend.copy(v, this.sinkValues[layer], n0 * this.width);
    }
    const rest = T - toSinks;
    let visible = Math.min(n0 + T, this.sinks) + this.held;
    if (rest > 0 && this.held + rest <= this.window) {
      // Filling: free slots follow the used ones, so the chunk stays in order at the end.
      inner.writeSlots!(layer, this.sinks + this.held, this.rows(keys, toSinks, rest), this.rows(values, toSinks, rest));
      visible += rest;
    } else if (rest > 0) {
      // Full: the new token takes the slot of the oldest (rest is 1, see writeLimit), which first goes
      // to its rollback slot (once per step: an iterative prefill writes a layer more than once).
      const slot = this.order[this.head];
      if (this.rollback > 0 && l.length === n0) inner.moveSlot!(layer, slot, this.rollbackSlot(this.evicted));
      inner.writeSlots!(layer, slot, keys, values);
    }
    const evicted = n0 + T - visible;
    if (this.sinks > 0 && evicted !== this.sinkShift[layer]) this.rotateSinks(layer, evicted);
    l.visible = visible;
    l.length = n0 + T;
  }

  /** Rewrites the sink keys rotated by `evicted` more positions: sink i sits at i + evicted in the stream's frame. */
  private rotateSinks(layer: number, evicted: number): void {
    const scratch = this.scratch!;
    this.backend.copy(this.sinkKeys[layer], scratch);
    this.shiftPositions.fill(evicted);
    this.rope(scratch, this.width / (this.invFreq.length * 2), this.shiftPositions, this.invFreq);
    this.inner.writeSlots!(layer, 0, scratch, this.sinkValues[layer]);
    this.sinkShift[layer] = evicted;
  }

  private rows(t: Tensor, from: number, count: number): Tensor {
    return from === 0 && count * this.width === t.size ? t : this.backend.view(t, [count, this.width], from * this.width);
  }

  commit(tokens: number): void {
    const next = this.committed + tokens;
    for (const l of this.layers) if (l.length !== next) throw new Error(`KV cache commit of ${tokens} tokens, but a layer holds ${l.length - this.committed}`);
    const toWindow = tokens - Math.max(0, Math.min(tokens, this.sinks - this.committed));
    for (let t = 0; t < toWindow; t++) {
      if (this.held < this.window) {
        const slot = this.sinks + this.held;
        const i = (this.head + this.held) % this.window;
        this.order[i] = slot;
        this.held++;
      } else {
        // The oldest slot now holds the newest token; the oldest waits in its rollback slot.
        this.head = (this.head + 1) % this.window;
        this.stashed = Math.min(this.stashed + 1, this.rollback);
      }
    }
    this.committed = next;
  }

  /**
   * Rolls back to `length` tokens of the stream. The dropped tokens must still be kept (not evicted).
   * The tokens they evicted come back from the rollback slots, as many as those hold, so within
   * `rollback` evictions the cache is as if the dropped tokens had never been written; beyond that
   * the window holds fewer tokens until new ones refill it. Slots stay a prefix: a freed slot below
   * the new end takes a token from above it or from a rollback slot (one row per dropped token at most).
   */
  truncate(length: number): void {
    const drop = this.committed - length;
    if (!(Number.isSafeInteger(length) && length >= 0 && drop >= 0)) {
      throw new RangeError(`cannot truncate the KV cache to ${length} tokens: it holds ${this.committed}`);
    }
    if (drop === 0) return;
    const sinksAfter = Math.min(length, this.sinks);
    const fromWindow = Math.min(drop, this.held);
    if (drop > fromWindow && this.evicted > 0) {
      throw new RangeError(
        `cannot roll the streaming KV cache back ${drop} tokens: only the last ${this.held} are still in the window (${this.evicted} were evicted); roll back at most ${this.held}`,
      );
    }
    // The window in age order after the rollback: evicted tokens brought back (the latest evictions,
    // oldest first), then the window tokens that stay.
    const stays = Array.from({ length: this.held - fromWindow }, (_, i) => this.order[(this.head + i) % this.window]);
    const restore = Math.min(this.stashed, Math.max(0, Math.min(this.window, length - this.sinks)) - stays.length);
    const evicted = this.evicted;
    const slots = [...Array.from({ length: restore }, (_, j) => this.rollbackSlot(evicted - restore + j)), ...stays];
    // Slots stay a prefix: tokens outside [sinks, end) move into the free slots inside it.
    const end = this.sinks + slots.length;
    const used = new Set(slots);
    const holes = Array.from({ length: slots.length }, (_, i) => this.sinks + i).filter((s) => !used.has(s));
    let h = 0;
    for (let i = 0; i < slots.length; i++) {
      if (slots[i] < end) continue;
      this.move(slots[i], holes[h]);
      slots[i] = holes[h++];
    }
    slots.forEach((slot, i) => (this.order[i] = slot));
    this.head = 0;
    this.held = slots.length;
    this.stashed -= restore;
    this.committed = length;
    const visible = sinksAfter + this.held;
    for (let l = 0; l < this.nLayers; l++) {
      // Fewer evictions now: the sinks move back by as many positions.
      if (this.sinks > 0 && length - visible !== this.sinkShift[l]) this.rotateSinks(l, length - visible);
      this.layers[l].length = length;
      this.layers[l].visible = visible;
    }
  }

  /** The rollback slot of eviction number `n` (0 for the first token ever evicted). */
  private rollbackSlot(n: number): number {
    return this.capacity + (n % this.rollback);
  }

  /** Moves the token in slot `from` to slot `to` in every layer. */
  private move(from: number, to: number): void {
    if (!this.inner.moveSlot) throw new Error(`streaming: rolling back a full window needs the '${this.inner.kind}' cache underneath to move slots (moveSlot)`);
    for (let l = 0; l < this.nLayers; l++) this.inner.moveSlot(l, from, to);
  }

  reset(): void {
    this.inner.reset();
    this.committed = 0;
    this.held = 0;
    this.head = 0;
    this.stashed = 0;
    this.sinkShift.fill(0);
    for (const l of this.layers) {
      l.length = 0;
      l.visible = 0;
    }
  }

  dispose(): void {
    this.inner.dispose();
    for (const t of [...this.sinkKeys, ...this.sinkValues]) t.dispose();
    this.scratch?.dispose();
  }
}
