import type { Backend } from '../backend/backend.js';
import type { KernelSignatures } from '../backend/kernel-signatures.js';
import type { KVCache } from '../kv-cache/kv-cache.js';
import type { Tensor } from '../tensor/tensor.js';
import type { LlamaConfig } from './config.js';
import { DenseLinear, type LinearModule } from './linear-module.js';
import { ropeInvFrequencies } from './rope-frequencies.js';
import { isLinearModule, type LlamaWeights, type Weight } from './weights.js';

/** One decoder block's modules; patchModel may swap any of the linear layers. */
export interface LlamaLayer {
  attnNorm: Tensor;
  q: LinearModule;
  k: LinearModule;
  v: LinearModule;
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

/** Activation buffers for up to `rows` tokens, allocated once and viewed for smaller chunks. */
class Activations {
  private lastRows = -1;
  private cached!: Record<'x' | 'h' | 'q' | 'k' | 'v' | 'att' | 'proj' | 'gate' | 'up', Tensor>;
  private readonly full: typeof this.cached;

  constructor(
    private readonly backend: Backend,
    readonly rows: number,
    c: LlamaConfig,
  ) {
    const q = c.nHeads * c.headDim;
    const kv = c.nKVHeads * c.headDim;
    const a = (width: number) => backend.allocate([rows, width], 'f32', 'activations');
    this.full = { x: a(c.hiddenSize), h: a(c.hiddenSize), q: a(q), k: a(kv), v: a(kv), att: a(q), proj: a(c.hiddenSize), gate: a(c.intermediateSize), up: a(c.intermediateSize) };
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
  private positions = new Int32Array(1);

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
      k: lin(`layers.${i}.k`, w.k, w.kBias),
      v: lin(`layers.${i}.v`, w.v, w.vBias),
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
  }

  /** Bytes of parameters held on the backend (a tied embedding counted once). */
  get weightBytes(): number {
    const mods = this.layers.flatMap((l) => [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]);
    const norms = this.layers.reduce((s, l) => s + l.attnNorm.byteLength + l.mlpNorm.byteLength, this.norm.byteLength);
    const head = this.lmHead instanceof DenseLinear && this.lmHead.weight === this.embed ? 0 : this.lmHead.bytes;
    return mods.reduce((s, m) => s + m.bytes, 0) + norms + this.embed.byteLength + head;
  }

  /**
   * Runs `ids` after what the cache already holds and appends their keys and values to it.
   * Returns f32 logits [1, vocab] for the last token or [ids.length, vocab] for all; the tensor is
   * reused by the next call.
   */
  forward(ids: Int32Array, cache: KVCache, opts: ForwardOptions = {}): Tensor {
    if (ids.length === 0) throw new Error('forward needs at least one token');
    const all = opts.logits === 'all';
    const vocab = this.config.vocabSize;
    const out = all ? this.logitsFor(ids.length) : null;
    let last!: Tensor;
    for (let start = 0; start < ids.length; start += this.maxChunk) {
      const chunk = ids.subarray(start, Math.min(ids.length, start + this.maxChunk));
      const x = this.runLayers(chunk, cache);
      if (out) {
        this.head(x, this.backend.view(out, [chunk.length, vocab], start * vocab));
      } else if (start + chunk.length === ids.length) {
        last = this.lastRowLogits(x, chunk.length);
      }
    }
    return out ?? last;
  }

  /**
   * Greedy decoding on the backend: `forward` for the last token, then its argmax into an i32 [1]
   * tensor (reused by the next call), so only the token id needs reading back.
   */
  forwardArgmax(ids: Int32Array, cache: KVCache): Tensor {
    const logits = this.forward(ids, cache);
    this.argmaxBuf ??= this.backend.allocate([1], 'i32', 'activations');
    this.backend.kernels.get(this.backend.name, 'argmax')(logits, this.argmaxBuf);
    return this.argmaxBuf;
  }

  private runLayers(ids: Int32Array, cache: KVCache): Tensor {
    const c = this.config;
    const T = ids.length;
    const a = this.activations(T);
    const startPos = cache.length;
    const positions = this.positions.length === T ? this.positions : (this.positions = new Int32Array(T));
    for (let t = 0; t < T; t++) positions[t] = startPos + t;
    const params = { nHeads: c.nHeads, nKVHeads: c.nKVHeads, headDim: c.headDim, scale: 1 / Math.sqrt(c.headDim), startPos, window: c.slidingWindow ?? undefined };

    this.k.embedding(this.embed, ids, a.x);
    this.layers.forEach((layer, l) => {
      this.k.rmsNorm(a.x, layer.attnNorm, c.rmsNormEps, a.h);
      layer.q.forward(a.h, a.q);
      layer.k.forward(a.h, a.k);
      layer.v.forward(a.h, a.v);
      this.k.rope(a.q, c.nHeads, positions, this.invFreq);
      this.k.rope(a.k, c.nKVHeads, positions, this.invFreq);
      cache.write(l, a.k, a.v);
      const kv = cache.layer(l);
      this.attention(kv.kind)(a.q, kv, params, a.att);
      layer.o.forward(a.att, a.proj);
      this.k.add(a.x, a.proj, a.x);

      this.k.rmsNorm(a.x, layer.mlpNorm, c.rmsNormEps, a.h);
      layer.gate.forward(a.h, a.gate);
      layer.up.forward(a.h, a.up);
      this.k.swiglu(a.gate, a.up, a.gate);
      layer.down.forward(a.gate, a.proj);
      this.k.add(a.x, a.proj, a.x);
    });
    cache.commit(T);
    return a.x;
  }

  /** Final norm and lm_head on the last row only: prefill need not project every token. */
  private lastRowLogits(x: Tensor, rows: number): Tensor {
    const d = this.config.hiddenSize;
    const out = this.logitsFor(1);
    this.head(rows === 1 ? x : this.backend.view(x, [1, d], (rows - 1) * d), out);
    return out;
  }

  private head(x: Tensor, out: Tensor): void {
    this.k.rmsNorm(x, this.norm, this.config.rmsNormEps, x);
    this.lmHead.forward(x, out);
  }

  private attention(kind: string): KernelSignatures['attention'] {
    let k = this.attentionKernels.get(kind);
    if (!k) {
      k = this.backend.kernels.get(this.backend.name, 'attention', kind);
      this.attentionKernels.set(kind, k);
    }
    return k;
  }

  private activations(rows: number): ReturnType<Activations['views']> {
    if (!this.acts || this.acts.rows < rows) {
      this.acts?.dispose();
      this.acts = new Activations(this.backend, Math.min(this.maxChunk, Math.max(rows, 1)), this.config);
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
      for (const m of [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]) m.dispose();
      l.attnNorm.dispose();
      l.mlpNorm.dispose();
    }
    if (!(this.lmHead instanceof DenseLinear && this.lmHead.weight === this.embed)) this.lmHead.dispose();
    this.embed.dispose();
    this.norm.dispose();
  }
}
