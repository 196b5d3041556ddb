/**
 * The flow both generating endpoints share: model check, prompt and context check, admission,
 * then a stream of SSE chunks or one JSON response. Everything that can refuse a request
 * happens before the stream opens, so refusals are plain HTTP errors.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { GenerationResult } from '@lithe/core';
import { modelLoadFailed, modelLoading, modelNotFound, OpenAIError, internalError } from '../openai-errors.js';
import { completionBudget } from '../prompt.js';
import type { TokenLogprob } from '../request-logits.js';
import type { SamplingRequest } from '../request-schema.js';
import { runGeneration } from '../run-generation.js';
import { SseWriter } from '../sse.js';
import type { ServerState } from '../state.js';
import type { Pipeline } from '@lithe/core';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** As OpenAI reports prompt caching: prompt tokens whose keys and values were reused. */
  prompt_tokens_details: { cached_tokens: number };
}

/** How one endpoint shapes its output. */
export interface OutputFormat<R extends SamplingRequest> {
  endpoint: 'chat' | 'completion';
  /** 'chatcmpl' or 'cmpl'. */
  idPrefix: string;
  /** The field the prompt came in, for context errors. */
  promptParam: string;
  promptIds(pipeline: Pipeline, request: R): number[] | Promise<number[]>;
  /** Chunks sent before the first token (the chat role). */
  head(base: ChunkBase): unknown[];
  /** A chunk for a token's text, or null to send nothing. */
  token(base: ChunkBase, text: string, logprob: TokenLogprob | null): unknown | null;
  /** The chunk that carries finish_reason. */
  finish(base: ChunkBase, reason: 'stop' | 'length'): unknown;
  /** The chunk of usage with no choices. */
  usage(base: ChunkBase, usage: Usage): unknown;
  /** The whole non-streamed response. */
  response(base: ChunkBase, result: GenerationResult, logprobs: TokenLogprob[] | null, usage: Usage): unknown;
}

export interface ChunkBase {
  id: string;
  created: number;
  model: string;
  /** `usage: null` on every chunk when the last one will carry the usage, as OpenAI does. */
  includeUsage: boolean;
}

/** The pipeline, or a 503 while the model loads (or when it failed to load). */
export function loadedPipeline(state: ServerState): Pipeline {
  if (!state.pipeline) throw state.loadError ? modelLoadFailed() : modelLoading();
  return state.pipeline;
}

export function checkModel(state: ServerState, model: string): void {
  if (model !== state.modelId) throw modelNotFound(state.modelId);
}

/** An AbortSignal that fires when the client goes away before its response is complete. */
function clientGone(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) ac.abort(new Error('the client closed the connection'));
  });
  return ac.signal;
}

function usageOf(r: GenerationResult): Usage {
  return {
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    total_tokens: r.promptTokens + r.completionTokens,
    prompt_tokens_details: { cached_tokens: r.cachedPromptTokens },
  };
}

export async function serveGeneration<R extends SamplingRequest>(
  state: ServerState,
  request: FastifyRequest,
  reply: FastifyReply,
  body: R,
  format: OutputFormat<R>,
): Promise<unknown> {
  const arrival = performance.now();
  const pipeline = loadedPipeline(state);
  checkModel(state, body.model);
  const promptIds = await format.promptIds(pipeline, body);
  const maxTokens = completionBudget(pipeline, promptIds.length, body.maxTokens, format.promptParam);

  const signal = clientGone(reply);
  let release: () => void;
  try {
    release = await state.scheduler.acquire(signal);
    state.metrics.queueTime.observe((performance.now() - arrival) / 1000);
  } catch (err) {
    if (signal.aborted) {
      state.metrics.requestAbortedWaiting(format.endpoint);
      return reply.hijack(); // nobody is listening any more
    }
    throw err;
  }

  const base: ChunkBase = {
    id: `${format.idPrefix}-${randomUUID().replace(/-/g, '')}`,
    created: Math.floor(Date.now() / 1000),
    model: state.modelId,
    includeUsage: body.includeUsage,
  };
  const run = { state, endpoint: format.endpoint, request: body, promptIds, maxTokens, signal, arrival };

  if (!body.stream) {
    const logprobs: TokenLogprob[] | null = body.logprobs !== null ? [] : null;
    const result = await runGeneration({ ...run, onToken: (_ev, lp) => void (lp && logprobs?.push(lp)) }, release);
    if (signal.aborted) return reply.hijack();
    return format.response(base, result, logprobs, usageOf(result));
  }

  reply.hijack();
  const sse = new SseWriter(reply.raw, state.writeTimeoutMs);
  sse.open();
  try {
    for (const chunk of format.head(base)) await sse.send(chunk);
    const result = await runGeneration(
      {
        ...run,
        onToken: async (event, lp) => {
          const chunk = format.token(base, event.text, lp);
          if (chunk !== null) await sse.send(chunk);
        },
      },
      release,
    );
    if (sse.closed) return;
    await sse.send(format.finish(base, result.finishReason === 'length' ? 'length' : 'stop'));
    if (body.includeUsage) await sse.send(format.usage(base, usageOf(result)));
    await sse.done();
  } catch (err) {
    // Headers are gone: the error travels as an event, then the stream ends (no [DONE]: the
    // text is not a whole completion).
    if (!(err instanceof OpenAIError)) request.log.error({ err }, 'generation failed mid-stream');
    const e = err instanceof OpenAIError ? err : internalError();
    await sse.send(e.toJSON()).catch(() => {});
    sse.end();
  }
  return reply;
}
