import type { KVCache } from '../kv-cache/kv-cache.js';
import type { LlamaModel } from '../model/llama.js';
import type { DecodeState, DecodeStep } from '../plugin/types.js';
import type { FinishReason, GenerationResult, PipelineEvents, TokenEvent } from './events.js';
import { Sampler, type SamplingOptions } from './sampling.js';
import { StopStringMatcher } from './stopping.js';
import { TokenTextStream, type TokenDecoder } from './text-stream.js';

export interface GenerateOptions extends SamplingOptions {
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
export const defaultDecodeStep: DecodeStep = async (state) => {
  const logits = await state.forward([state.tokens[state.tokens.length - 1]]);
  return [state.sample(logits)];
};

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
  const tokens = [...promptIds];
  const state: DecodeState = {
    model,
    cache,
    tokens,
    forward: logitsReader(model, cache),
    sample: (logits) => {
      ctx.processLogits?.(logits, tokens);
      return sampler.sample(logits, tokens);
    },
  };
  const eos = opts.stopOnEos === false ? [] : ctx.tokenizer.eosTokenIds;
  const text = new TokenTextStream(ctx.tokenizer, { contextIds: promptIds.slice(-4) });
  const stops = new StopStringMatcher(opts.stop ?? []);
  const generated: number[] = [];
  let out = '';
  let finish: FinishReason = 'length';

  const start = performance.now();
  const first = maxTokens > 0 && !opts.signal?.aborted ? [state.sample(await state.forward(promptIds))] : [];
  const prefillMs = performance.now() - start;
  ctx.emit('prefill', { promptTokens: promptIds.length, ms: prefillMs });

  // Text still held back (an unfinished character, a possible stop string) once generation ends.
  const tail = () => (stops.stopped ? '' : stops.push(text.flush()).emit + stops.flush());

  let pending = first;
  const decodeStart = performance.now();
  let decodeTokens = 0;
  outer: while (pending.length > 0) {
    for (const id of pending) {
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
