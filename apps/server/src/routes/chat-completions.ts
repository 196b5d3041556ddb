/** POST /v1/chat/completions: the model's chat template over the messages, streamed or not. */
import type { FastifyInstance } from 'fastify';
import type { LitheTokenizer } from '@lithe/core';
import { chatPromptIds } from '../prompt.js';
import type { TokenLogprob } from '../request-logits.js';
import { parseChatRequest, type ChatRequest } from '../request-schema.js';
import { finiteLogprob, openAIFinishReason, tokenPiece } from '../run-generation.js';
import type { ServerState } from '../state.js';
import { loadedPipeline, serveGeneration, type ChunkBase, type OutputFormat } from './serve-generation.js';

function logprobContent(tokenizer: LitheTokenizer, lps: TokenLogprob[]) {
  return lps.map((lp) => ({
    ...tokenPiece(tokenizer, lp.id),
    logprob: finiteLogprob(lp.logprob),
    top_logprobs: lp.top.map((t) => ({ ...tokenPiece(tokenizer, t.id), logprob: finiteLogprob(t.logprob) })),
  }));
}

function chunk(base: ChunkBase, choices: unknown[], extra: Record<string, unknown> = {}) {
  return {
    id: base.id,
    object: 'chat.completion.chunk',
    created: base.created,
    model: base.model,
    system_fingerprint: null,
    choices,
    ...(base.includeUsage ? { usage: null } : {}),
    ...extra,
  };
}

function chatFormat(state: ServerState, tokenizer: LitheTokenizer, wantLogprobs: boolean): OutputFormat<ChatRequest> {
  const noLogprobs = wantLogprobs ? { content: [], refusal: null } : null;
  return {
    endpoint: 'chat',
    idPrefix: 'chatcmpl',
    promptParam: 'messages',
    promptIds: (pipeline, req) => chatPromptIds(pipeline, state.prompts, req.messages),
    head: (base) => [chunk(base, [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: noLogprobs, finish_reason: null }])],
    token: (base, text, lp) => {
      if (text === '' && !lp) return null;
      const logprobs = lp ? { content: logprobContent(tokenizer, [lp]), refusal: null } : null;
      return chunk(base, [{ index: 0, delta: { content: text }, logprobs, finish_reason: null }]);
    },
    finish: (base, reason) => chunk(base, [{ index: 0, delta: {}, logprobs: null, finish_reason: reason }]),
    usage: (base, usage) => ({ ...chunk(base, []), usage }),
    response: (base, result, lps, usage) => ({
      id: base.id,
      object: 'chat.completion',
      created: base.created,
      model: base.model,
      system_fingerprint: null,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: result.text, refusal: null, annotations: [] },
          logprobs: lps ? { content: logprobContent(tokenizer, lps), refusal: null } : null,
          finish_reason: openAIFinishReason(result.finishReason),
        },
      ],
      usage,
    }),
  };
}

export function chatCompletionsRoute(app: FastifyInstance, state: ServerState): void {
  app.post('/v1/chat/completions', async (request, reply) => {
    const pipeline = loadedPipeline(state);
    const body = parseChatRequest(request.body, pipeline.config.vocabSize);
    return serveGeneration(state, request, reply, body, chatFormat(state, pipeline.tokenizer, body.logprobs !== null));
  });
}
