/**
 * Test references, in f64 and independent of the engine: StreamingLLM as the paper states it. Every
 * token attends to exactly the kept tokens (the first `sinks` and the last `window`, itself
 * included), with rotary positions reassigned as their places in that list: keys are kept un-rotated
 * and rotated afresh for every query.
 */
import { referenceLinear, referenceRmsNorm } from '@lithe/core/testing';

/** Rotates one head vector (HF rotate_half layout) at `pos`, in f64. */
export function rotate(v: ArrayLike<number>, pos: number, invFreq: ArrayLike<number>): Float64Array {
  const half = invFreq.length;
  const out = Float64Array.from(v);
  for (let i = 0; i < half; i++) {
    const th = pos * invFreq[i];
    const [a, b] = [v[i], v[i + half]];
    out[i] = a * Math.cos(th) - b * Math.sin(th);
    out[i + half] = b * Math.cos(th) + a * Math.sin(th);
  }
  return out;
}

/** What one token leaves in a layer: its un-rotated key and its value, [nKVHeads * headDim]. */
export interface KeptToken {
  key: Float64Array;
  value: Float64Array;
}

/**
 * The kept set of one layer: sinks, then the window in stream order. The last `rollback` evicted
 * tokens wait aside, and a rollback brings back as many as the window then has room for.
 */
export class KeptTokens {
  readonly sinkTokens: KeptToken[] = [];
  readonly windowTokens: KeptToken[] = [];
  private readonly evicted: KeptToken[] = [];
  private length = 0;
  constructor(
    readonly sinks: number,
    readonly window: number,
    readonly rollback = 0,
  ) {}

  add(t: KeptToken): void {
    this.length++;
    if (this.sinkTokens.length < this.sinks) return void this.sinkTokens.push(t);
    this.windowTokens.push(t);
    if (this.windowTokens.length > this.window) {
      this.evicted.push(this.windowTokens.shift()!);
      if (this.evicted.length > this.rollback) this.evicted.shift();
    }
  }

  /** Drops the newest `n` tokens (a rollback); evicted ones come back as far as `rollback` reaches. */
  drop(n: number): void {
    const w = Math.min(n, this.windowTokens.length);
    this.windowTokens.splice(this.windowTokens.length - w, w);
    this.sinkTokens.splice(this.sinkTokens.length - (n - w), n - w);
    this.length -= n;
    while (this.windowTokens.length < Math.min(this.window, this.length - this.sinks) && this.evicted.length > 0) this.windowTokens.unshift(this.evicted.pop()!);
  }

  get all(): KeptToken[] {
    return [...this.sinkTokens, ...this.windowTokens];
  }
}

/**
 * GQA attention of one query (un-rotated, [nHeads * headDim]) over the kept tokens, key j at position
 * j and the query at `qPos`: the last of them by default, or just after them when the query's own
 * token is not among them (a layer reading KV from above, LCKV's no_diag). Zeros for no keys at all.
 */
export function keptAttention(q: ArrayLike<number>, kept: KeptToken[], nHeads: number, nKVHeads: number, headDim: number, invFreq: ArrayLike<number>, qPos = kept.length - 1): Float64Array {
  const out = new Float64Array(nHeads * headDim);
  if (kept.length === 0) return out;
  const keys = kept.map((t, j) => {
    const r = new Float64Array(nKVHeads * headDim);
    for (let g = 0; g < nKVHeads; g++) r.set(rotate(t.key.subarray(g * headDim, (g + 1) * headDim), j, invFreq), g * headDim);
    return r;
  });
  for (let h = 0; h < nHeads; h++) {
    const g = Math.floor(h / (nHeads / nKVHeads));
    const qr = rotate(Array.from(q).slice(h * headDim, (h + 1) * headDim), qPos, invFreq);
    const scores = keys.map((k) => {
      let s = 0;
      for (let i = 0; i < headDim; i++) s += qr[i] * k[g * headDim + i];
      return s / Math.sqrt(headDim);
    });
    const m = Math.max(...scores);
    const e = scores.map((s) => Math.exp(s - m));
    const z = e.reduce((a, b) => a + b, 0);
    for (let i = 0; i < headDim; i++) out[h * headDim + i] = e.reduce((acc, p, j) => acc + (p / z) * kept[j].value[g * headDim + i], 0);
  }
  return out;
}

export interface RefConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  vocab_size: number;
  rms_norm_eps: number;
  tie_word_embeddings?: boolean;
}

/**
 * A naive f64 Llama fed one token at a time, each layer attending over its kept tokens only
 * (`keptAttention`). `step` returns the token's logits.
 *
 * `source` (LCKV, cross-layer KV) names the layer whose keys and values each layer attends to; a
 * layer computes its own only where source[l] = l. A layer reading a layer above it runs before that
 * layer has this token, so it attends to the tokens kept before it, the query placed just after them.
 */
export class ReferenceStreamingLlama {
  private readonly kept: KeptTokens[];
  private readonly source: readonly number[];

  constructor(
    private readonly c: RefConfig,
    private readonly w: Map<string, Float32Array>,
    private readonly invFreq: ArrayLike<number>,
    sinks: number,
    window: number,
    source?: readonly number[],
  ) {
    this.kept = Array.from({ length: c.num_hidden_layers }, () => new KeptTokens(sinks, window));
    this.source = source ?? Array.from({ length: c.num_hidden_layers }, (_, l) => l);
  }

  step(id: number): Float64Array {
    const c = this.c;
    const D = c.hidden_size;
    const [H, KV] = [c.num_attention_heads, c.num_key_value_heads];
    const hd = D / H;
    const get = (n: string) => this.w.get(n)!;
    const linear = (x: Float64Array, name: string, outF: number, inF: number) => referenceLinear(this.w, name, x, outF, inF);
    const norm = (x: Float64Array, name: string) => referenceRmsNorm(this.w, name, x, c.rms_norm_eps);
    let x = Float64Array.from(get('model.embed_tokens.weight').subarray(id * D, (id + 1) * D));
    for (let l = 0; l < c.num_hidden_layers; l++) {
      const p = `model.layers.${l}.`;
      const h = norm(x, `${p}input_layernorm.weight`);
      const q = linear(h, `${p}self_attn.q_proj`, H * hd, D);
      const s = this.source[l];
      if (s === l) this.kept[l].add({ key: linear(h, `${p}self_attn.k_proj`, KV * hd, D), value: linear(h, `${p}self_attn.v_proj`, KV * hd, D) });
      const kept = this.kept[s].all;
      const att = keptAttention(q, kept, H, KV, hd, this.invFreq, s > l ? kept.length : kept.length - 1);
      const o = linear(att, `${p}self_attn.o_proj`, D, H * hd);
      const x1 = x.map((v, i) => v + o[i]);
      const h2 = norm(x1, `${p}post_attention_layernorm.weight`);
      const gate = linear(h2, `${p}mlp.gate_proj`, c.intermediate_size, D);
      const up = linear(h2, `${p}mlp.up_proj`, c.intermediate_size, D);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
      const down = linear(act, `${p}mlp.down_proj`, D, c.intermediate_size);
      x = x1.map((v, i) => v + down[i]);
    }
    return linear(norm(x, 'model.norm.weight'), c.tie_word_embeddings ? 'model.embed_tokens' : 'lm_head', c.vocab_size, D);
  }

  drop(n: number): void {
    for (const k of this.kept) k.drop(n);
  }
}
