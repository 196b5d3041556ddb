import type { KVCache } from '../kv-cache/kv-cache.js';
import type { LlamaModel } from '../model/llama.js';

export interface PerplexityResult {
  perplexity: number;
  /** Tokens scored: every token of every window except the window's first. */
  tokens: number;
  /** Mean negative log-likelihood (nats per token). */
  meanNll: number;
}

/**
 * Perplexity over `ids` cut into consecutive, non-overlapping windows of `context` tokens (the last
 * may be shorter). Each window starts from an empty cache, and each of its tokens after the first is
 * scored from the tokens before it in that window: perplexity = exp(mean NLL).
 */
export async function perplexity(
  model: LlamaModel,
  cache: KVCache,
  ids: readonly number[],
  context: number,
  onWindow?: (done: number, total: number) => void,
): Promise<PerplexityResult> {
  if (!(Number.isSafeInteger(context) && context >= 2)) throw new RangeError(`context must be an integer ≥ 2, got ${context}`);
  if (context > cache.capacity) throw new RangeError(`context ${context} exceeds the KV cache size ${cache.capacity}`);
  const V = model.config.vocabSize;
  const windows = Math.ceil(ids.length / context);
  let nll = 0;
  let scored = 0;
  for (let w = 0; w < windows; w++) {
    const window = ids.slice(w * context, (w + 1) * context);
    if (window.length < 2) continue;
    cache.reset();
    const logits = (await model.backend.read(model.forward(Int32Array.from(window), cache, { logits: 'all' }))) as Float32Array;
    for (let t = 0; t + 1 < window.length; t++) {
      // -log softmax(logits[t])[next], in f64 with the max subtracted for stability.
      const row = t * V;
      let max = -Infinity;
      for (let i = 0; i < V; i++) if (logits[row + i] > max) max = logits[row + i];
      let sum = 0;
      for (let i = 0; i < V; i++) sum += Math.exp(logits[row + i] - max);
      nll += max + Math.log(sum) - logits[row + window[t + 1]];
      scored++;
    }
    onWindow?.(w + 1, windows);
  }
  cache.reset();
  if (scored === 0) throw new Error('perplexity needs at least two tokens in a window');
  const meanNll = nll / scored;
  return { perplexity: Math.exp(meanNll), tokens: scored, meanNll };
}
