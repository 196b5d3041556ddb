/**
 * One request's generation from admission to the end: the logits settings, the token events
 * (with their logprobs when asked for), the metrics, and the slot given back however it ends.
 */
import type { FinishReason, GenerationResult, LitheTokenizer, TokenEvent } from '@lithe/core';
import { OpenAIError } from './openai-errors.js';
import { requestLogitsProcessors, type TokenLogprob } from './request-logits.js';
import type { SamplingRequest } from './request-schema.js';
import type { ServerState } from './state.js';

export interface RunOptions {
  state: ServerState;
  endpoint: 'chat' | 'completion';
  request: SamplingRequest;
  promptIds: number[];
  maxTokens: number;
  signal: AbortSignal;
  /** performance.now() when the request arrived. */
  arrival: number;
  /** Called for each token event (in order); a returned promise is awaited (stream backpressure). */
  onToken: (event: TokenEvent, logprob: TokenLogprob | null) => void | Promise<void>;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** OpenAI's finish reasons: an aborted generation reads as 'stop' (a cut one ends with an error instead). */
export function openAIFinishReason(reason: FinishReason): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop';
}

/** Runs the generation; the caller holds a scheduler slot, which `release` gives back. */
export async function runGeneration(o: RunOptions, release: () => void): Promise<GenerationResult> {
  const { state, request } = o;
  const pipeline = state.pipeline!;
  const metrics = state.metrics;
  const controller = new AbortController();
  const abort = () => controller.abort(o.signal.reason);
  o.signal.addEventListener('abort', abort, { once: true });
  state.controllers.add(controller);
  let outcome: 'stop' | 'length' | 'abort' | 'error' = 'error';
  try {
    const result = await (async () => {
      const generation = pipeline.generate(o.promptIds, {
        maxTokens: o.maxTokens,
        temperature: request.temperature,
        topP: request.topP,
        topK: request.topK,
        minP: request.minP,
        repetitionPenalty: request.repetitionPenalty,
        seed: request.seed,
        stop: request.stop,
        signal: controller.signal,
        logitsProcessors: requestLogitsProcessors(request, o.promptIds.length),
        logprobs: request.logprobs ?? undefined,
      });
      let last = 0;
      for await (const event of generation) {
        const now = performance.now();
        if (event.id !== null) {
          if (event.index === 0) metrics.ttft.observe((now - o.arrival) / 1000);
          else metrics.itl.observe((now - last) / 1000);
          last = now;
        }
        const lp = event.id !== null && event.logprob !== undefined ? { id: event.id, logprob: event.logprob, top: event.topLogprobs ?? [] } : null;
        await o.onToken(event, lp);
        // On the CPU backend a decode step can finish without a macrotask: give the event loop a
        // turn per token so writes reach the socket as they happen and other requests progress.
        await yieldToEventLoop();
      }
      return generation.result;
    })();
    outcome = result.finishReason;
    metrics.promptTokens += result.promptTokens;
    metrics.cachedPromptTokens += result.cachedPromptTokens;
    metrics.generationTokens += result.completionTokens;
    // Cut by the server (a drain that ran out of time): the caller must not report a normal end.
    if (controller.signal.reason instanceof OpenAIError) throw controller.signal.reason;
    return result;
  } finally {
    metrics.e2e.observe((performance.now() - o.arrival) / 1000);
    metrics.requestFinished(o.endpoint, outcome);
    o.signal.removeEventListener('abort', abort);
    state.controllers.delete(controller);
    release();
  }
}

/** The text of one token as OpenAI's logprobs show it, with its UTF-8 bytes. */
export function tokenPiece(tokenizer: LitheTokenizer, id: number): { token: string; bytes: number[] } {
  const piece = tokenizer.idToToken(id) ?? '';
  const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
  if (byte) {
    const b = parseInt(byte[1], 16);
    return { token: b < 0x80 ? String.fromCharCode(b) : `bytes:\\x${byte[1].toLowerCase()}`, bytes: [b] };
  }
  const token = piece.includes('\u2581') ? piece.replace(/\u2581/g, ' ') : tokenizer.decode([id], { skipSpecialTokens: false });
  return { token, bytes: [...Buffer.from(token, 'utf8')] };
}

/** A log probability as JSON can carry it (OpenAI writes -9999 for impossible tokens). */
export function finiteLogprob(v: number): number {
  return Number.isFinite(v) ? v : -9999;
}
