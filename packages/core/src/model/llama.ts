import type { Backend } from '../backend/backend.js';
import type { AttentionParams, KernelSignatures } from '../backend/kernel-signatures.js';
import { QUANTIZED_ATTENTION, type KVCache, type KVCacheLayer } from '../kv-cache/kv-cache.js';
import type { Tensor } from '../tensor/tensor.js';
import type { LlamaConfig } from './config.js';
import { identityKVLayerMap, kvSlots, type KVSlots } from './kv-layer-map.js';
import { defaultLayerSchedule, type LayerSchedule } from './layer-schedule.js';
import { DenseLinear, type LinearModule } from './linear-module.js';
import { ropeInvFrequencies } from './rope-frequencies.js';
import { isLinearModule, type LlamaWeights, type Weight } from './weights.js';

/** One decoder block's modules; patchModel may swap any of the linear layers. */
export interface LlamaLayer {
  attnNorm: Tensor;
  q: LinearModule;
  /** Null in a layer that computes no keys and values (it reads another layer's: `config.kvLayerMap`). */
  k: LinearModule | null;
  v: LinearModule | null;
  o: LinearModule;
  mlpNorm: Tensor;
  gate: LinearModule;
  up: LinearModule;
  down: LinearModule;
}

export interface ForwardOptions {
  /** Which rows of logits to compute: the last token's (generation) or every token's (scoring). */
  logits?: 'last' | 'all';
}

/** One sequence of a batched forward: its new tokens, its own KV cache, and the logits it wants. */
export interface BatchSequence {
  ids: Int32Array;
  cache: KVCache;
  /** 'last' (default): the last new token's row; 'all': one row per new token; 'none': no logits (a prefill chunk). */
  logits?: 'last' | 'all' | 'none';
}

/** A sequence's share of one step of the batched forward. */
interface StepPart {
  ids: Int32Array;
  cache: KVCache;
  /** Logits rows it wants from this step: its last ones. */
  logitRows: number;
}

/** A step part with its rows of the activations and its cache's position. */
interface StepRows extends StepPart {
  row: number;
  startPos: number;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  att: Tensor;
  zeros?: Tensor;
}

/**
 * Activation buffers for up to `rows` tokens, allocated once and viewed for smaller chunks. With
 * `iterative`, also a copy of the hidden states for passes that only refresh KV and zero KV rows.
 */
class Activations {
  private lastRows = -1;
  private cached!: Record<'x' | 'h' | 'q' | 'k' | 'v' | 'att' | 'proj' | 'gate' | 'up', Tensor> & { y?: Tensor; zeros?: Tensor };
  private readonly full: typeof this.cached;

  constructor(
    private readonly backend: Backend,
    readonly rows: number,
    c: LlamaConfig,
    iterative: boolean,
  ) {
    const q = c.nHeads * c.headDim;
    const kv = c.nKVHeads * c.headDim;
    const a = (width: number) => backend.allocate([rows, width], 'f32', 'activations');
    this.full = { x: a(c.hiddenSize), h: a(c.hiddenSize), q: a(q), k: a(kv), v: a(kv), att: a(q), proj: a(c.hiddenSize), gate: a(c.intermediateSize), up: a(c.intermediateSize) };
    if (iterative) {
      this.full.y = a(c.hiddenSize);
      this.full.zeros = backend.upload(new Uint8Array(rows * kv * 4), [rows, kv], 'f32', 'activations');
    }
  }

  views(rows: number): typeof this.cached {
    if (rows !== this.lastRows) {
      const v = {} as typeof this.cached;
      for (const [name, t] of Object.entries(this.full)) v[name as keyof typeof v] = rows === this.rows ? t : this.backend.view(t, [rows, t.shape[1]]);
      this.cached = v;
      this.lastRows = rows;
    }
    return this.cached;
  }

  dispose(): void {
    for (const t of Object.values(this.full)) t.dispose();
  }
}

/**
 * The Llama-family decoder (Llama 2/3/3.1, Mistral, Qwen2, TinyLlama, SmolLM): a few kernels called
 * in order, readable top to bottom. Long inputs run in chunks of `maxChunk` tokens so activation
 * memory stays bounded.
 */
export class LlamaModel {
  readonly layers: LlamaLayer[];
  embed: Tensor;
  norm: Tensor;
  lmHead: LinearModule;
  readonly invFreq: Float32Array;
  private readonly k: { [K in 'embedding' | 'rmsNorm' | 'rope' | 'swiglu' | 'add']: KernelSignatures[K] };
  private readonly attentionKernels = new Map<string, KernelSignatures['attention']>();
  private acts: Activations | null = null;
  private logitsBuf: Tensor | null = null;
  private argmaxBuf: Tensor | null = null;
  private ids = new Int32Array(0);
  private positions = new Int32Array(0);
  /** The cache layer each layer writes and reads (config.kvLayerMap, or every layer its own). */
  readonly kvSlots: KVSlots;
  private readonly layerParams: AttentionParams[];
  /** How a forward pass walks the layers over new tokens; a plugin's patchModel may replace it. */
  schedule: LayerSchedule;

  constructor(
    readonly config: LlamaConfig,
    readonly backend: Backend,
    weights: LlamaWeights,
    readonly maxChunk = 256,
  ) {
    const lin = (name: string, w: Weight, b: Tensor | null = null): LinearModule => (isLinearModule(w) ? w : new DenseLinear(name, backend, w, b));
    this.layers = weights.layers.map((w, i) => ({
      attnNorm: w.attnNorm,
      q: lin(`layers.${i}.q`, w.q, w.qBias),
      k: w.k && lin(`layers.${i}.k`, w.k, w.kBias),
      v: w.v && lin(`layers.${i}.v`, w.v, w.vBias),
      o: lin(`layers.${i}.o`, w.o),
      mlpNorm: w.mlpNorm,
      gate: lin(`layers.${i}.gate`, w.gate),
      up: lin(`layers.${i}.up`, w.up),
      down: lin(`layers.${i}.down`, w.down),
    }));
    this.embed = weights.embed;
    this.norm = weights.norm;
    this.lmHead = lin('lm_head', weights.lmHead);
    this.invFreq = ropeInvFrequencies(config);
    const get = <K extends keyof KernelSignatures>(op: K, variant?: string) => backend.kernels.get(backend.name, op, variant);
    this.k = { embedding: get('embedding', this.embed.dtype), rmsNorm: get('rmsNorm'), rope: get('rope'), swiglu: get('swiglu'), add: get('add') };
    const map = config.kvLayerMap ?? identityKVLayerMap(config.nLayers, config.slidingWindow);
    this.kvSlots = kvSlots(map);
    this.schedule = defaultLayerSchedule(config.nLayers, config.kvLayerMap ?? null);
    const attn = { nHeads: config.nHeads, nKVHeads: config.nKVHeads, headDim: config.headDim, scale: 1 / Math.sqrt(config.headDim), startPos: 0 };
    this.layerParams = map.source.map((_, l) => ({ ...attn, window: map.window[l] ?? undefined, noDiagonal: map.noDiagonal[l] }));
  }

  /** Bytes of parameters held on the backend (a tied embedding counted once). */
  get weightBytes(): number {
    const mods = this.layers.flatMap((l) => [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]).filter((m) => m !== null);
    const norms = this.layers.reduce((s, l) => s + l.attnNorm.byteLength + l.mlpNorm.byteLength, this.norm.byteLength);
    const head = this.lmHead instanceof DenseLinear && this.lmHead.weight === this.embed ? 0 : this.lmHead.bytes;
    return mods.reduce((s, m) => s + m.bytes, 0) + norms + this.embed.byteLength + head;
  }

  /**
   * Runs `ids` after what the cache already holds and appends their keys and values to it.
   * Returns f32 logits [1, vocab] for the last token or [ids.length, vocab] for all; the tensor is
   * reused by the next call. The one-sequence case of `forwardBatch`.
   */
  forward(ids: Int32Array, cache: KVCache, opts: ForwardOptions = {}): Tensor {
    return this.forwardBatch([{ ids, cache, logits: opts.logits ?? 'last' }]) as Tensor;
  }

  /**
   * The batched forward: B sequences, each with its own KV cache, its own position (what its cache
   * holds) and its own number of new tokens, so decode rows and prefill chunks mix freely. The rows
   * of all sequences are stacked and every linear layer runs once over them (one pass over the
   * weights per step); rope uses each row's own position, and attention runs per sequence over its
   * own cache. More than `maxChunk` rows run in several steps, a long sequence spanning steps.
   *
   * Returns f32 logits for the rows the sequences ask for, in sequence order (one row for 'last',
   * one per new token for 'all', none for 'none'), or null when none asks; the tensor is reused by
   * the next call. Speculative verification (k + 1 rows), server batching and chunked prefill all
   * run through here.
   */
  forwardBatch(seqs: readonly BatchSequence[]): Tensor | null {
    if (seqs.length === 0) throw new Error('forwardBatch needs at least one sequence');
    const caches = new Set<KVCache>();
    let outRows = 0;
    for (const s of seqs) {
      if (s.ids.length === 0) throw new Error(`forwardBatch: sequence ${caches.size} has no tokens; give each sequence at least one`);
      if (caches.has(s.cache)) throw new Error('forwardBatch: two sequences share one KV cache; give each sequence its own');
      caches.add(s.cache);
      outRows += s.logits === 'all' ? s.ids.length : s.logits === 'none' ? 0 : 1;
    }
    const out = outRows > 0 ? this.logitsFor(outRows) : null;
    // Rows are packed into steps of at most maxChunk in sequence order, so logits come out in order.
    let parts: StepPart[] = [];
    let rows = 0;
    let outRow = 0;
    for (const s of seqs) {
      const perPass = this.schedule.passTokens(s.ids.length);
      for (let start = 0; start < s.ids.length; ) {
        // A cache may limit how many tokens one step writes (a rolling window once full).
        const limit = Math.max(1, Math.min(perPass, s.cache.writeLimit?.() ?? Infinity));
        const end = Math.min(s.ids.length, start + this.maxChunk - rows, start + limit);
        const logitRows = s.logits === 'all' ? end - start : s.logits !== 'none' && end === s.ids.length ? 1 : 0;
        parts.push({ ids: s.ids.subarray(start, end), cache: s.cache, logitRows });
        rows += end - start;
        start = end;
        // One part per sequence in a step: a sequence cut short (by its schedule or its cache's
        // write limit) goes on in the next step, which sees what this one wrote.
        if (rows === this.maxChunk || start < s.ids.length) {
          outRow = this.runStep(parts, rows, out, outRow);
          [parts, rows] = [[], 0];
        }
      }
    }
    if (parts.length > 0) this.runStep(parts, rows, out, outRow);
    return out;
  }

  /**
   * Greedy decoding on the backend: `forward` for the last token, then its argmax into an i32 [1]
   * tensor (reused by the next call), so only the token id needs reading back.
   */
  forwardArgmax(ids: Int32Array, cache: KVCache): Tensor {
    return this.argmax(this.forward(ids, cache));
  }

  /**
   * Decoder block `l` alone on hidden states x [T, hidden], written back into x (the calibration
   * pass runs the model block by block this way: model/calibration.ts). `cache` has one layer, for
   * this block's keys and values; positions continue after what it holds.
   */
  forwardBlock(l: number, x: Tensor, cache: KVCache): void {
    const c = this.config;
    const layer = this.layers[l];
    if (!layer) throw new RangeError(`forwardBlock: block ${l} does not exist; the model has ${this.layers.length}`);
    if (cache.nLayers !== 1) throw new Error(`forwardBlock: the cache must have one layer (for block ${l}), it has ${cache.nLayers}`);
    if (!layer.k || !layer.v || this.kvSlots.read[l] !== this.kvSlots.write[l]) {
      throw new Error(`forwardBlock: block ${l} attends to another layer's keys and values (a KV layer map); a block runs alone only when it has its own`);
    }
    const d = c.hiddenSize;
    for (let start = 0; start < x.shape[0]; start += this.maxChunk) {
      const T = Math.min(this.maxChunk, x.shape[0] - start);
      const a = this.activations(T);
      const startPos = cache.length;
      const positions = Int32Array.from({ length: T }, (_, t) => startPos + t);
      const seq: StepRows = { ids: new Int32Array(T), cache, logitRows: 0, row: 0, startPos, q: a.q, k: a.k, v: a.v, att: a.att };
      this.block(l, this.backend.view(x, [T, d], start * d), a, [seq], positions, 0);
      cache.commit(T);
    }
  }

  /** The token embeddings of `ids` into x [ids.length, hidden] (the calibration pass's first step). */
  embedTokens(ids: Int32Array, x: Tensor): void {
    this.k.embedding(this.embed, ids, x);
  }

  /** The argmax of each logits row on the backend, into an i32 [rows] tensor reused by the next call. */
  argmax(logits: Tensor): Tensor {
    const rows = logits.shape[0];
    if (!this.argmaxBuf || this.argmaxBuf.shape[0] < rows) {
      this.argmaxBuf?.dispose();
      this.argmaxBuf = this.backend.allocate([rows], 'i32', 'activations');
    }
    const out = this.argmaxBuf.shape[0] === rows ? this.argmaxBuf : this.backend.view(this.argmaxBuf, [rows]);
    this.backend.kernels.get(this.backend.name, 'argmax')(logits, out);
    return out;
  }

  /** One step of the batched forward over `rows` stacked rows; returns the next free logits row. */
  private runStep(parts: StepPart[], rows: number, out: Tensor | null, outRow: number): number {
    const c = this.config;
    const a = this.activations(rows);
    if (this.ids.length < rows) [this.ids, this.positions] = [new Int32Array(this.maxChunk), new Int32Array(this.maxChunk)];
    const ids = this.ids.subarray(0, rows);
    const positions = this.positions.subarray(0, rows);
    // Each sequence's rows of q/k/v/att, and its cache's position.
    let r = 0;
    const seqs: StepRows[] = parts.map((p) => {
      const n = p.ids.length;
      const startPos = p.cache.length;
      ids.set(p.ids, r);
      for (let t = 0; t < n; t++) positions[r + t] = startPos + t;
      const rowsOf = (t: Tensor) => (n === rows ? t : this.backend.view(t, [n, t.shape[1]], r * t.shape[1]));
      const s = { ...p, row: r, startPos, q: rowsOf(a.q), k: rowsOf(a.k), v: rowsOf(a.v), att: rowsOf(a.att), zeros: a.zeros && this.backend.view(a.zeros, [n, a.zeros.shape[1]]) };
      r += n;
      return s;
    });

    this.k.embedding(this.embed, ids, a.x);
    // Rows that a lower layer reads before their own layer writes them start as zeros.
    for (const s of seqs) if (s.ids.length > 1) for (const l of this.kvSlots.readFromBelow) s.cache.write(this.kvSlots.write[l], s.zeros!, s.zeros!);
    for (const step of this.schedule.steps(Math.max(...seqs.map((s) => s.ids.length)))) {
      // Passes but the last refresh the KV these layers write; their hidden states are dropped.
      for (let pass = 1; pass < step.passes; pass++) {
        this.backend.copy(a.x, a.y!);
        for (let l = step.from; l < step.to; l++) this.block(l, a.y!, a, seqs, positions);
      }
      for (let l = step.from; l < step.to; l++) this.block(l, a.x, a, seqs, positions);
    }
    for (const s of seqs) s.cache.commit(s.ids.length);

    // Final norm and lm_head only on the rows asked for (prefill need not project every token):
    // one contiguous run is viewed in place, scattered rows are gathered into the free `h` buffer.
    const want = seqs.filter((s) => s.logitRows > 0).map((s) => [s.row + s.ids.length - s.logitRows, s.logitRows] as const);
    const n = want.reduce((sum, [, k]) => sum + k, 0);
    if (!out || n === 0) return outRow;
    const d = c.hiddenSize;
    const contiguous = want.every(([row], i) => i === 0 || row === want[i - 1][0] + want[i - 1][1]);
    let x = a.x;
    if (contiguous) {
      if (n !== rows) x = this.backend.view(a.x, [n, d], want[0][0] * d);
    } else {
      let dst = 0;
      for (const [row, k] of want) {
        this.backend.copy(this.backend.view(a.x, [k, d], row * d), a.h, dst * d);
        dst += k;
      }
      x = this.backend.view(a.h, [n, d]);
    }
    const vocab = c.vocabSize;
    this.head(x, n === out.shape[0] ? out : this.backend.view(out, [n, vocab], outRow * vocab));
    return outRow + n;
  }

  /**
   * Decoder layer l on the hidden states x of every row, in place; attention per sequence. `slot`
   * overrides the cache layer it writes and reads (forwardBlock's one-layer cache).
   */
  private block(l: number, x: Tensor, a: ReturnType<Activations['views']>, seqs: readonly StepRows[], positions: Int32Array, slot?: number): void {
    const c = this.config;
    const layer = this.layers[l];
    this.k.rmsNorm(x, layer.attnNorm, c.rmsNormEps, a.h);
    layer.q.forward(a.h, a.q);
    this.k.rope(a.q, c.nHeads, positions, this.invFreq);
    if (layer.k && layer.v) {
      layer.k.forward(a.h, a.k);
      layer.v.forward(a.h, a.v);
      this.k.rope(a.k, c.nKVHeads, positions, this.invFreq);
      for (const s of seqs) s.cache.write(slot ?? this.kvSlots.write[l], s.k, s.v);
    }
    const params = this.layerParams[l];
    for (const s of seqs) {
      const kv = s.cache.layer(slot ?? this.kvSlots.read[l]);
      params.startPos = s.startPos;
      this.attention(kv)(s.q, kv, params, s.att);
    }
    layer.o.forward(a.att, a.proj);
    this.k.add(x, a.proj, x);

    this.k.rmsNorm(x, layer.mlpNorm, c.rmsNormEps, a.h);
    layer.gate.forward(a.h, a.gate);
    layer.up.forward(a.h, a.up);
    this.k.swiglu(a.gate, a.up, a.gate);
    layer.down.forward(a.gate, a.proj);
    this.k.add(x, a.proj, x);
  }

  private head(x: Tensor, out: Tensor): void {
    this.k.rmsNorm(x, this.norm, this.config.rmsNormEps, x);
    this.lmHead.forward(x, out);
  }

  /** The layer kind's kernel; for a block-quantized layer, a registered quantized reader first. */
  private attention(layer: KVCacheLayer): KernelSignatures['attention'] {
    const reg = this.backend.kernels;
    const kind = layer.quantized && reg.has(this.backend.name, 'attention', QUANTIZED_ATTENTION) ? QUANTIZED_ATTENTION : layer.kind;
    let k = this.attentionKernels.get(kind);
    if (!k) {
      k = reg.get(this.backend.name, 'attention', kind);
      this.attentionKernels.set(kind, k);
    }
    return k;
  }

  private activations(rows: number): ReturnType<Activations['views']> {
    if (!this.acts || this.acts.rows < rows) {
      this.acts?.dispose();
      const iterative = this.kvSlots.readFromBelow.length > 0;
      this.acts = new Activations(this.backend, Math.min(this.maxChunk, Math.max(rows, 1)), this.config, iterative);
    }
    return this.acts.views(rows);
  }

  private logitsFor(rows: number): Tensor {
    if (!this.logitsBuf || this.logitsBuf.shape[0] < rows) {
      this.logitsBuf?.dispose();
      this.logitsBuf = this.backend.allocate([rows, this.config.vocabSize], 'f32', 'activations');
    }
    return this.logitsBuf.shape[0] === rows ? this.logitsBuf : this.backend.view(this.logitsBuf, [rows, this.config.vocabSize]);
  }

  /** Frees activation buffers (weights stay); they are reallocated on the next forward. */
  releaseActivations(): void {
    this.acts?.dispose();
    this.acts = null;
    this.logitsBuf?.dispose();
    this.logitsBuf = null;
    this.argmaxBuf?.dispose();
    this.argmaxBuf = null;
  }

  dispose(): void {
    this.releaseActivations();
    for (const l of this.layers) {
      for (const m of [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]) m?.dispose();
      l.attnNorm.dispose();
      l.mlpNorm.dispose();
    }
    if (!(this.lmHead instanceof DenseLinear && this.lmHead.weight === this.embed)) this.lmHead.dispose();
    this.embed.dispose();
    this.norm.dispose();
  }
}
