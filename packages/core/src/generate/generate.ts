import type { KVCache } from '../kv-cache/kv-cache.js';
import type { LlamaModel } from '../model/llama.js';
import type { DecodeState, DecodeStep } from '../plugin/types.js';
import type { ModelRunner } from './batch-scheduler.js';
import type { FinishReason, GenerationResult, PipelineEvents, TokenEvent } from './events.js';
import { logprobsOf, type TokenLogprobs } from './logprobs.js';
import { nanLogitsError, Sampler, type SamplingOptions } from './sampling.js';
import { StopStringMatcher } from './stopping.js';
import { yieldToEventLoop } from './yield-to-event-loop.js';
import { TokenTextStream, type TokenDecoder } from './text-stream.js';

export interface GenerateOptions extends SamplingOptions {
  /** Logits processors for this generation only, run after the plugins' and before sampling. */
  logitsProcessors?: ((logits: Float32Array, tokens: readonly number[]) => void)[];
  /** Report each token's log-probability and this many alternatives (0–20) on its event. */
  logprobs?: number;
  /** Most tokens to generate (default 256; a pipeline's default is `pipeline.defaultMaxTokens`). */
  maxTokens?: number;
  /** Generation ends before any of these strings; they are not part of the text. */
  stop?: string[];
  /** End at the model's end-of-sequence token (default true). */
  stopOnEos?: boolean;
  signal?: AbortSignal;
}

/** What one generation needs from its pipeline. */
export interface GenerationContext {
  model: LlamaModel;
  cache: KVCache;
  tokenizer: TokenDecoder & { eosTokenIds: readonly number[] };
  decodeStep: DecodeStep;
  processLogits: ((logits: Float32Array, tokens: readonly number[]) => void) | null;
  emit<E extends keyof PipelineEvents>(event: E, payload: PipelineEvents[E]): void;
  peakMemory(): number;
  /** How model calls run: batched with other generations (the pipeline's scheduler) or directly. */
  runner?: ModelRunner;
  /**
   * Leading prompt tokens whose keys and values the cache already holds (a reused prefix; default
   * 0): the prefill runs only the rest. Less than the prompt's length, so the last token runs.
   */
  cachedTokens?: number;
}

/** Runs the model directly, one call at a time (a pipeline batches concurrent generations instead). */
export function directRunner(model: LlamaModel): ModelRunner {
  const id = new Int32Array(1);
  return {
    async forward(ids, cache, logits, into) {
      const out = model.forward(Int32Array.from(ids), cache, { logits });
      return (await model.backend.read(out, into?.length === out.size ? into : undefined)) as Float32Array;
    },
    async argmax(ids, cache) {
      return (await model.backend.read(model.forwardArgmax(Int32Array.from(ids), cache), id))[0];
    },
  };
}

/**
 * Runs the model and copies the logits out; the one-row case reuses a single buffer so decoding
 * allocates nothing per token proportional to the vocabulary.
 */
function logitsReader(runner: ModelRunner, model: LlamaModel, cache: KVCache): (ids: readonly number[], logits?: 'last' | 'all', signal?: AbortSignal) => Promise<Float32Array> {
  const row = new Float32Array(model.config.vocabSize);
  return (ids, logits = 'last', signal) => runner.forward(ids, cache, logits, row, signal);
}

/** A rejection handler: null when `signal` has aborted (the call was cancelled), else the error again. */
function abortedOr(signal: AbortSignal | undefined): (e: unknown) => null {
  return (e) => {
    if (signal?.aborted) return null;
    throw e;
  };
}

/** `{ stats }` with a deep copy of what steps recorded, or nothing when they recorded nothing. */
function statsCopy(stats: Record<string, unknown>): { stats?: Record<string, unknown> } {
  return Object.keys(stats).length > 0 ? { stats: structuredClone(stats) } : {};
}

/** The plain decode step: feed the last token, choose the next one. */
export const defaultDecodeStep: DecodeStep = async (state) => [await state.next([state.tokens[state.tokens.length - 1]])];

/** The device argmax marks a row holding a NaN with -1 (the argmax kernel contract). */
function checkArgmax(id: number): number {
  if (id < 0) throw nanLogitsError();
  return id;
}

/**
 * Prefill, then decode token by token, as an async iterator of token events. The generator's
 * return value is the full result. The cache holds `ctx.cachedTokens` leading tokens of `promptIds` (a reused prefix) or nothing of them.
 */
export async function* generateTokens(ctx: GenerationContext, promptIds: readonly number[], opts: GenerateOptions): AsyncGenerator<TokenEvent, GenerationResult> {
  const ends: (() => void)[] = [];
  try {
    return yield* runGeneration(ctx, promptIds, opts, ends);
  } finally {
    for (const fn of ends.splice(0)) fn();
  }
}

async function* runGeneration(ctx: GenerationContext, promptIds: readonly number[], opts: GenerateOptions, ends: (() => void)[]): AsyncGenerator<TokenEvent, GenerationResult> {
  const maxTokens = opts.maxTokens ?? 256;
  if (!(Number.isSafeInteger(maxTokens) && maxTokens >= 0)) throw new RangeError(`maxTokens must be a non-negative integer, got ${maxTokens}`);
  if (promptIds.length === 0) throw new Error('the prompt is empty: give at least one token');
  const cached = ctx.cachedTokens ?? 0;
  if (!(Number.isSafeInteger(cached) && cached >= 0 && cached < promptIds.length && cached <= ctx.cache.length)) {
    throw new RangeError(`cachedTokens must be an integer from 0 to ${Math.min(promptIds.length - 1, ctx.cache.length)} (below the prompt's length, within what the cache holds), got ${cached}`);
  }
  const room = ctx.cache.capacity - ctx.cache.length;
  if (!ctx.cache.unbounded && promptIds.length - cached + maxTokens > room) {
    throw new RangeError(`prompt (${promptIds.length} tokens) + maxTokens (${maxTokens}) exceed the KV cache size (${room + cached} free); lower maxTokens or raise the cache size`);
  }

  const { model, cache } = ctx;
  const sampler = new Sampler(opts, model.config.vocabSize);
  const processors = [...(ctx.processLogits ? [ctx.processLogits] : []), ...(opts.logitsProcessors ?? [])];
  const topLogprobs = opts.logprobs;
  if (topLogprobs !== undefined && !(Number.isSafeInteger(topLogprobs) && topLogprobs >= 0 && topLogprobs <= 20)) {
    throw new RangeError(`logprobs must be an integer from 0 to 20, got ${topLogprobs}`);
  }
  // Log-probabilities of sampled tokens, in sampling order, until their events are made.
  const logprobs: TokenLogprobs[] = [];
  const tokens = [...promptIds];
  const runner = ctx.runner ?? directRunner(model);
  const forward = logitsReader(runner, model, cache);
  const sample = (logits: Float32Array) => {
    for (const p of processors) p(logits, tokens);
    const id = sampler.sample(logits, tokens);
    if (topLogprobs !== undefined) logprobs.push(logprobsOf(logits, id, topLogprobs));
    return id;
  };
  const generated: number[] = [];
  const stats: Record<string, unknown> = {};
  const b = model.backend;
  const onDevice =
    b.preferDeviceSampling && sampler.temperature === 0 && sampler.repetitionPenalty === 1 && processors.length === 0 && topLogprobs === undefined && b.supportsOp('argmax');
  const next = (ids: readonly number[], signal?: AbortSignal) => (onDevice ? runner.argmax(ids, cache, signal).then(checkArgmax) : forward(ids, 'last', signal).then(sample));
  const state: DecodeState = {
    model,
    cache,
    tokens,
    forward,
    sample,
    next: (ids) => next(ids),
    get remaining() {
      return maxTokens - generated.length;
    },
    signal: opts.signal,
    greedy: sampler.temperature === 0,
    distribution: (logits, context, out) => {
      for (const p of processors) p(logits, context);
      return sampler.distribution(logits, context, out);
    },
    draw: (probs) => sampler.draw(probs),
    random: () => sampler.random(),
    chose: (logits, id) => {
      if (topLogprobs !== undefined) logprobs.push(logprobsOf(logits, id, topLogprobs));
    },
    stats,
    onEnd: (fn) => void ends.push(fn),
  };
  const eos = opts.stopOnEos === false ? [] : ctx.tokenizer.eosTokenIds;
  const text = new TokenTextStream(ctx.tokenizer, { contextIds: promptIds.slice(-4) });
  const stops = new StopStringMatcher(opts.stop ?? []);
  let out = '';
  let finish: FinishReason = 'length';

  const start = performance.now();
  // The prefill takes the abort signal: a long prompt run in chunks among other generations stops
  // between its chunks when the request is cancelled.
  const prefilled = maxTokens > 0 && !opts.signal?.aborted ? await next(cached > 0 ? promptIds.slice(cached) : promptIds, opts.signal).catch(abortedOr(opts.signal)) : null;
  const first = prefilled === null ? [] : [prefilled];
  const prefillMs = performance.now() - start;
  ctx.emit('prefill', { promptTokens: promptIds.length, ms: prefillMs });

  // Text still held back (an unfinished character, a possible stop string) once generation ends.
  const tail = () => (stops.stopped ? '' : stops.push(text.flush()).emit + stops.flush());

  let pending = first;
  const decodeStart = performance.now();
  let decodeTokens = 0;
  outer: while (pending.length > 0) {
    for (const id of pending) {
      // A step may bring several tokens (speculative decoding): an abort between them stops here.
      if (opts.signal?.aborted) {
        finish = 'abort';
        break outer;
      }
      const lp = logprobs.shift();
      if (eos.includes(id)) {
        finish = 'stop';
        break outer;
      }
      generated.push(id);
      tokens.push(id);
      const r = stops.push(text.push(id));
      const last = r.stopped || generated.length >= maxTokens;
      if (r.stopped) finish = 'stop';
      const event: TokenEvent = { index: generated.length - 1, id, text: last ? r.emit + tail() : r.emit };
      if (lp) [event.logprob, event.topLogprobs] = [lp.logprob, lp.top];
      out += event.text;
      ctx.emit('token', event);
      yield event;
      if (last) break outer;
    }
    // Let timers and I/O run, so an AbortSignal fired from a timer (or Ctrl-C) is seen before the next step.
    await yieldToEventLoop();
    if (opts.signal?.aborted) {
      finish = 'abort';
      break;
    }
    const t0 = performance.now();
    pending = await ctx.decodeStep(state);
    decodeTokens += pending.length;
    ctx.emit('step', { tokens: pending.length, ms: performance.now() - t0, ...statsCopy(stats) });
  }
  if (opts.signal?.aborted && maxTokens > 0 && generated.length === 0) finish = 'abort';
  const rest = finish === 'length' && generated.length >= maxTokens ? '' : tail();
  if (rest) {
    // Ended by EOS or abort with text still held back: release it without a new token.
    const event: TokenEvent = { index: generated.length, id: null, text: rest };
    out += rest;
    ctx.emit('token', event);
    yield event;
  }

  const decodeMs = performance.now() - decodeStart;
  const result: GenerationResult = {
    text: out,
    tokenIds: generated,
    promptTokens: promptIds.length,
    cachedPromptTokens: cached,
    completionTokens: generated.length,
    finishReason: finish,
    timings: {
      ttftMs: prefillMs,
      prefillMs,
      decodeMs,
      prefillTokensPerSecond: promptIds.length / (prefillMs / 1000),
      decodeTokensPerSecond: decodeTokens > 0 ? decodeTokens / (decodeMs / 1000) : 0,
    },
    peakMemoryBytes: ctx.peakMemory(),
    ...statsCopy(stats),
  };
  ctx.emit('done', result);
  return result;
}
