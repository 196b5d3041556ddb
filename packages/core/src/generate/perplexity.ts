import type { KVCache } from '../kv-cache/kv-cache.js';
import type { LlamaModel } from '../model/llama.js';

export interface PerplexityResult {
  perplexity: number;
  /** Tokens scored: every token of every window except the window's first. */
  tokens: number;
  /** Mean negative log-likelihood (nats per token). */
  meanNll: number;
}

/** Tokens scored per forward call: bounds the logits buffer ([rows, vocab]) for long windows. */
const SCORE_ROWS = 256;

/**
 * Perplexity over `ids` cut into consecutive, non-overlapping windows of `context` tokens (the last
 * may be shorter). Each window starts from an empty cache, and each of its tokens after the first is
 * scored from the tokens before it in that window: perplexity = exp(mean NLL). A window is fed in
 * pieces of at most 256 tokens, so logits memory stays bounded; with an `unbounded` cache (a rolling
 * window) `context` may exceed the cache size and the window is scored as one stream.
 */
export async function perplexity(
  model: LlamaModel,
  cache: KVCache,
  ids: readonly number[],
  context: number,
  onWindow?: (done: number, total: number) => void,
): Promise<PerplexityResult> {
  if (!(Number.isSafeInteger(context) && context >= 2)) throw new RangeError(`context must be an integer ≥ 2, got ${context}`);
  if (context > cache.capacity && !cache.unbounded) throw new RangeError(`context ${context} exceeds the KV cache size ${cache.capacity}`);
  const V = model.config.vocabSize;
  const windows = Math.ceil(ids.length / context);
  let nll = 0;
  let scored = 0;
  for (let w = 0; w < windows; w++) {
    const window = ids.slice(w * context, (w + 1) * context);
    if (window.length < 2) continue;
    cache.reset();
    // The last token is only a target, never fed.
    for (let start = 0; start + 1 < window.length; start += SCORE_ROWS) {
      const piece = window.slice(start, Math.min(window.length - 1, start + SCORE_ROWS));
      const logits = (await model.backend.read(model.forward(Int32Array.from(piece), cache, { logits: 'all' }))) as Float32Array;
      for (let t = 0; t < piece.length; t++) {
        // -log softmax(logits[t])[next], in f64 with the max subtracted for stability.
        const row = t * V;
        let max = -Infinity;
        for (let i = 0; i < V; i++) if (logits[row + i] > max) max = logits[row + i];
        let sum = 0;
        for (let i = 0; i < V; i++) sum += Math.exp(logits[row + i] - max);
        nll += max + Math.log(sum) - logits[row + window[start + t + 1]];
        scored++;
      }
    }
    onWindow?.(w + 1, windows);
  }
  cache.reset();
  if (scored === 0) throw new Error('perplexity needs at least two tokens in a window');
  const meanNll = nll / scored;
  return { perplexity: Math.exp(meanNll), tokens: scored, meanNll };
}
