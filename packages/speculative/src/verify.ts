/**
 * The verification rule of speculative decoding (Leviathan et al. 2023, Chen et al. 2023). Drafted
 * token d_i, drawn from the draft's distribution q_i, is accepted with probability
 * min(1, p_i(d) / q_i(d)), where p_i is the target's distribution at that position; the first
 * rejected position draws its token from norm(max(0, p_i − q_i)) instead, and when every draft is
 * accepted one more token comes from the target's next distribution. Each emitted token is then
 * distributed exactly as if the target had been sampled on its own.
 */

export interface Verification {
  /** Drafted ids, in order. */
  drafted: readonly number[];
  /**
   * The draft's distribution for each drafted id, or null when proposals are deterministic (prompt
   * lookup: q is all mass on the drafted id).
   */
  q: readonly Float64Array[] | null;
  /** The target's distribution at position i (0 ≤ i ≤ drafted.length), asked for in order, lazily. */
  p(i: number): Float64Array;
  /** Greedy: p is one-hot; a draft is kept when it is the target's argmax, and no randomness is used. */
  greedy: boolean;
  /** Uniform in [0, 1) from the generation's seeded RNG. */
  random(): number;
  /** Draws an index in proportion to non-negative weights, from the same RNG. */
  draw(weights: ArrayLike<number>): number;
  /** Scratch for the residual distribution, one entry per token. */
  residual: Float64Array;
}

export interface Verdict {
  /** The tokens to emit: the accepted drafts, then the correction or bonus token. */
  tokens: number[];
  /** How many drafted ids were accepted. */
  accepted: number;
}

function argmax(p: Float64Array): number {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
  return best;
}

/** Runs the accept / reject walk over the drafted ids; see the module comment. */
export function verify(v: Verification): Verdict {
  const tokens: number[] = [];
  for (let i = 0; i <= v.drafted.length; i++) {
    const p = v.p(i);
    if (i === v.drafted.length) {
      tokens.push(v.greedy ? argmax(p) : v.draw(p)); // every draft accepted: a bonus token from p
      return { tokens, accepted: i };
    }
    const d = v.drafted[i];
    const q = v.q?.[i];
    const qd = q ? q[d] : 1;
    // u < p/q, written as u·q < p; p ≥ q needs no draw.
    const accept = v.greedy ? p[d] > 0 : p[d] >= qd || v.random() * qd < p[d];
    if (accept) {
      tokens.push(d);
      continue;
    }
    if (v.greedy) {
      tokens.push(argmax(p));
      return { tokens, accepted: i };
    }
    const r = v.residual;
    let mass = 0;
    for (let t = 0; t < r.length; t++) {
      const x = p[t] - (q ? q[t] : t === d ? 1 : 0);
      r[t] = x > 0 ? x : 0;
      mass += r[t];
    }
    // No residual mass only when p equals q up to rounding, where the draft is always accepted.
    tokens.push(mass > 0 ? v.draw(r) : v.draw(p));
    return { tokens, accepted: i };
  }
  throw new Error('unreachable');
}
