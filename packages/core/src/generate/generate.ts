import type { KVCache } from '../kv-cache/kv-cache.js';
import type { LlamaModel } from '../model/llama.js';
import type { DecodeState, DecodeStep } from '../plugin/types.js';
import type { FinishReason, GenerationResult, PipelineEvents, TokenEvent } from './events.js';
import { logprobsOf, type TokenLogprobs } from './logprobs.js';
import { Sampler, type SamplingOptions } from './sampling.js';
import { StopStringMatcher } from './stopping.js';
import { TokenTextStream, type TokenDecoder } from './text-stream.js';

export interface GenerateOptions extends SamplingOptions {
  /** Logits processors for this generation only, run after the plugins' and before sampling. */
  logitsProcessors?: ((logits: Float32Array, tokens: readonly number[]) => void)[];
  /** Report each token's log-probability and this many alternatives (0–20) on its event. */
  logprobs?: number;
  /** Most tokens to generate (default 256). */
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
}

/**
 * Runs the model and copies the logits out; the one-row case reuses a single buffer so decoding
 * allocates nothing per token proportional to the vocabulary.
 */
function logitsReader(model: LlamaModel, cache: KVCache): DecodeState['forward'] {
  const row = new Float32Array(model.config.vocabSize);
  return async (ids, logits = 'last') => {
    const out = model.forward(Int32Array.from(ids), cache, { logits });
    return (await model.backend.read(out, out.size === row.length ? row : undefined)) as Float32Array;
  };
}

/** The plain decode step: feed the last token, choose the next one. */
export const defaultDecodeStep: DecodeStep = async (state) => [await state.next([state.tokens[state.tokens.length - 1]])];

/**
 * Greedy decoding where the backend prefers it (a GPU): the argmax runs on the device and 4 bytes are
 * read back instead of the logits. Only used when nothing else looks at the logits, so the tokens
 * are those `sample` would choose.
 */
function deviceArgmax(model: LlamaModel, cache: KVCache): (ids: readonly number[]) => Promise<number> {
  const id = new Int32Array(1);
  return async (ids) => (await model.backend.read(model.forwardArgmax(Int32Array.from(ids), cache), id))[0];
}

/**
 * Prefill, then decode token by token, as an async iterator of token events. The generator's
 * return value is the full result. The cache must be empty or hold a prefix of `promptIds`' context.
 */
export async function* generateTokens(ctx: GenerationContext, promptIds: readonly number[], opts: GenerateOptions): AsyncGenerator<TokenEvent, GenerationResult> {
  const maxTokens = opts.maxTokens ?? 256;
  if (!(Number.isSafeInteger(maxTokens) && maxTokens >= 0)) throw new RangeError(`maxTokens must be a non-negative integer, got ${maxTokens}`);
  if (promptIds.length === 0) throw new Error('the prompt is empty: give at least one token');
  const room = ctx.cache.capacity - ctx.cache.length;
  if (promptIds.length + maxTokens > room) {
    throw new RangeError(`prompt (${promptIds.length} tokens) + maxTokens (${maxTokens}) exceed the KV cache size (${room} free); lower maxTokens or raise the cache size`);
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
  const forward = logitsReader(model, cache);
  const sample = (logits: Float32Array) => {
    for (const p of processors) p(logits, tokens);
    const id = sampler.sample(logits, tokens);
    if (topLogprobs !== undefined) logprobs.push(logprobsOf(logits, id, topLogprobs));
    return id;
  };
  const b = model.backend;
  const onDevice =
    b.preferDeviceSampling && sampler.temperature === 0 && sampler.repetitionPenalty === 1 && processors.length === 0 && topLogprobs === undefined && b.supportsOp('argmax');
  const state: DecodeState = {
    model,
    cache,
    tokens,
    forward,
    sample,
    next: onDevice ? deviceArgmax(model, cache) : async (ids) => sample(await forward(ids)),
  };
  const eos = opts.stopOnEos === false ? [] : ctx.tokenizer.eosTokenIds;
  const text = new TokenTextStream(ctx.tokenizer, { contextIds: promptIds.slice(-4) });
  const stops = new StopStringMatcher(opts.stop ?? []);
  const generated: number[] = [];
  let out = '';
  let finish: FinishReason = 'length';

  const start = performance.now();
  const first = maxTokens > 0 && !opts.signal?.aborted ? [await state.next(promptIds)] : [];
  const prefillMs = performance.now() - start;
  ctx.emit('prefill', { promptTokens: promptIds.length, ms: prefillMs });

  // Text still held back (an unfinished character, a possible stop string) once generation ends.
  const tail = () => (stops.stopped ? '' : stops.push(text.flush()).emit + stops.flush());

  let pending = first;
  const decodeStart = performance.now();
  let decodeTokens = 0;
  outer: while (pending.length > 0) {
    for (const id of pending) {
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
    if (opts.signal?.aborted) {
      finish = 'abort';
      break;
    }
    const t0 = performance.now();
    pending = await ctx.decodeStep(state);
    decodeTokens += pending.length;
    ctx.emit('step', { tokens: pending.length, ms: performance.now() - t0 });
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
  };
  ctx.emit('done', result);
  return result;
}
