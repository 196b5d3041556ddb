export interface TokenLogprob {
  id: number;
  logprob: number;
}

export interface TokenLogprobs {
  /** Log-probability of the chosen token. */
  logprob: number;
  /** The `top` most likely tokens, most likely first. */
  top: TokenLogprob[];
}

/** log softmax(logits)[id] and the `top` largest log-probabilities, in f64, without sorting the vocabulary. */
export function logprobsOf(logits: Float32Array, id: number, top: number): TokenLogprobs {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);

  // A small sorted list, kept descending: top is at most 20.
  const best: TokenLogprob[] = [];
  for (let i = 0; i < logits.length && top > 0; i++) {
    const v = logits[i];
    if (best.length === top && v <= best[top - 1].logprob) continue;
    let at = best.length;
    while (at > 0 && best[at - 1].logprob < v) at--;
    best.splice(at, 0, { id: i, logprob: v });
    if (best.length > top) best.pop();
  }
  return { logprob: logits[id] - lse, top: best.map((b) => ({ id: b.id, logprob: b.logprob - lse })) };
}
