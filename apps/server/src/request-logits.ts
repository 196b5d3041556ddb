/**
 * Per-request logits work that core's sampler does not do: OpenAI's presence and frequency
 * penalties, logit_bias, and logprobs. Core's logits processors belong to the pipeline (plugins),
 * so this is one plugin that reads the settings of the request being generated from an
 * AsyncLocalStorage: the generation runs in the async context of the request that iterates it,
 * which also holds when several generations interleave.
 *
 * The plugin must be in the pipeline (startServer adds it; with createServer({ pipeline }) add
 * `requestLogitsPlugin()` to createPipeline's plugins). Without it, requests that need it get a 400.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { LithePlugin, Pipeline } from '@lithe/core';

export interface RequestLogits {
  /** Prompt length: penalties count only the generated tokens after it. */
  promptLength: number;
  presencePenalty: number;
  frequencyPenalty: number;
  logitBias: Map<number, number> | null;
  /** Keep the logits each token was sampled from, for logprobs. */
  keepLogits: boolean;
  /** The logits (after penalties and bias, before temperature) the latest token was drawn from. */
  lastLogits: Float32Array | null;
}

export const PLUGIN_NAME = 'lithe-server-request-logits';

const storage = new AsyncLocalStorage<RequestLogits>();
// Backends of pipelines built with the plugin: a pipeline has its own backend, which the
// plugin's setup sees, so this tells whether a given pipeline has it.
const withPlugin = new WeakSet<object>();

/** The plugin to add to `createPipeline({ plugins })` for penalties, logit_bias and logprobs. */
export function requestLogitsPlugin(): LithePlugin {
  return {
    name: PLUGIN_NAME,
    // After every other logits processor: logprobs describe the logits actually sampled from.
    enforce: 'post',
    setup: (ctx) => void withPlugin.add(ctx.backend),
    processLogits: (logits, tokens) => {
      const s = storage.getStore();
      if (!s) return;
      if (s.presencePenalty !== 0 || s.frequencyPenalty !== 0) {
        const counts = new Map<number, number>();
        for (let i = s.promptLength; i < tokens.length; i++) counts.set(tokens[i], (counts.get(tokens[i]) ?? 0) + 1);
        for (const [id, n] of counts) logits[id] -= s.presencePenalty + n * s.frequencyPenalty;
      }
      if (s.logitBias) for (const [id, b] of s.logitBias) logits[id] += b;
      // One-row logits live in a buffer core reuses for the next step, after this token's event.
      if (s.keepLogits) s.lastLogits = logits;
    },
  };
}

export function hasRequestLogits(pipeline: Pipeline): boolean {
  return withPlugin.has(pipeline.backend);
}

/** Runs `fn` (which iterates a generation) with `settings` applying to that generation. */
export function withRequestLogits<T>(settings: RequestLogits, fn: () => Promise<T>): Promise<T> {
  return storage.run(settings, fn);
}

export interface TokenLogprob {
  id: number;
  logprob: number;
  top: { id: number; logprob: number }[];
}

/** log-softmax of `logits` at `id`, and the `k` most likely tokens. */
export function tokenLogprob(logits: Float32Array, id: number, k: number): TokenLogprob {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  const top: { id: number; logprob: number }[] = [];
  if (k > 0) {
    // k <= 20: insertion into a short sorted list.
    for (let i = 0; i < logits.length; i++) {
      const v = logits[i];
      if (top.length === k && v <= top[k - 1].logprob) continue;
      let j = Math.min(top.length, k - 1);
      if (top.length < k) top.push({ id: i, logprob: v });
      while (j > 0 && top[j - 1].logprob < v) {
        top[j] = top[j - 1];
        j--;
      }
      top[j] = { id: i, logprob: v };
    }
    for (const t of top) t.logprob -= lse;
  }
  return { id, logprob: logits[id] - lse, top };
}
