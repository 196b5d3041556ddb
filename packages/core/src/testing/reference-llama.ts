/**
 * A deliberately naive f64 Llama forward over a whole sequence (no cache, explicit mask), written
 * from the HF modeling code's equations and independent of the engine, to test the engine's model
 * on architectures the golden fixture does not cover.
 */
export interface RefConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  vocab_size: number;
  rms_norm_eps: number;
  head_dim?: number;
  tie_word_embeddings?: boolean;
  sliding_window?: number | null;
}

/** y = W·x (+ bias where the weights have one) in f64, with `name.weight` [outF, inF] from `w`. */
export function referenceLinear(w: Map<string, Float32Array>, name: string, x: Float64Array, outF: number, inF: number): Float64Array {
  const W = w.get(`${name}.weight`);
  if (!W) throw new Error(`missing ${name}.weight`);
  const b = w.get(`${name}.bias`);
  const y = new Float64Array(outF);
  for (let o = 0; o < outF; o++) {
    let s = b ? b[o] : 0;
    for (let i = 0; i < inF; i++) s += W[o * inF + i] * x[i];
    y[o] = s;
  }
  return y;
}

/** RMSNorm in f64 with the weight `name` from `w`. */
export function referenceRmsNorm(w: Map<string, Float32Array>, name: string, x: Float64Array, eps: number): Float64Array {
  const g = w.get(name);
  if (!g) throw new Error(`missing ${name}`);
  const ms = x.reduce((s, v) => s + v * v, 0) / x.length;
  return x.map((v, i) => (v / Math.sqrt(ms + eps)) * g[i]);
}

export function referenceForward(c: RefConfig, w: Map<string, Float32Array>, ids: number[], invFreq: ArrayLike<number>): Float64Array[] {
  const D = c.hidden_size;
  const H = c.num_attention_heads;
  const KV = c.num_key_value_heads;
  const hd = c.head_dim ?? D / H;
  const T = ids.length;
  const get = (n: string) => {
    const t = w.get(n);
    if (!t) throw new Error(`missing ${n}`);
    return t;
  };
  const linear = (x: Float64Array, name: string, outF: number, inF: number) => referenceLinear(w, name, x, outF, inF);
  const norm = (x: Float64Array, name: string) => referenceRmsNorm(w, name, x, c.rms_norm_eps);
  const rope = (v: Float64Array, heads: number, pos: number) => {
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < hd / 2; i++) {
        const a = v[h * hd + i];
        const b = v[h * hd + i + hd / 2];
        const th = pos * invFreq[i];
        v[h * hd + i] = a * Math.cos(th) - b * Math.sin(th);
        v[h * hd + i + hd / 2] = b * Math.cos(th) + a * Math.sin(th);
      }
  };
  const E = get('model.embed_tokens.weight');
  let xs = ids.map((id) => Float64Array.from(E.subarray(id * D, (id + 1) * D)));
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const hs = xs.map((x) => norm(x, `${p}input_layernorm.weight`));
    const q = hs.map((h, t) => {
      const v = linear(h, `${p}self_attn.q_proj`, H * hd, D);
      rope(v, H, t);
      return v;
    });
    const k = hs.map((h, t) => {
      const v = linear(h, `${p}self_attn.k_proj`, KV * hd, D);
      rope(v, KV, t);
      return v;
    });
    const vv = hs.map((h) => linear(h, `${p}self_attn.v_proj`, KV * hd, D));
    xs = xs.map((x, t) => {
      const att = new Float64Array(H * hd);
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / KV));
        const scores: number[] = [];
        for (let j = 0; j < T; j++) {
          const masked = j > t || (c.sliding_window != null && j <= t - c.sliding_window);
          let s = 0;
          for (let i = 0; i < hd; i++) s += q[t][h * hd + i] * k[j][g * hd + i];
          scores.push(masked ? -Infinity : s / Math.sqrt(hd));
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < hd; i++) att[h * hd + i] = e.reduce((acc, pj, j) => acc + (pj / z) * vv[j][g * hd + i], 0);
      }
      const o = linear(att, `${p}self_attn.o_proj`, D, H * hd);
      const x1 = x.map((v, i) => v + o[i]);
      const h2 = norm(x1, `${p}post_attention_layernorm.weight`);
      const gate = linear(h2, `${p}mlp.gate_proj`, c.intermediate_size, D);
      const up = linear(h2, `${p}mlp.up_proj`, c.intermediate_size, D);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
      const down = linear(act, `${p}mlp.down_proj`, D, c.intermediate_size);
      return x1.map((v, i) => v + down[i]);
    });
  }
  const head = c.tie_word_embeddings ? 'model.embed_tokens' : 'lm_head';
  return xs.map((x) => linear(norm(x, 'model.norm.weight'), head, c.vocab_size, D));
}
