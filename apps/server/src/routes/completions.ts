/** POST /v1/completions: a raw prompt (text or token ids), streamed or not. */
import type { FastifyInstance } from 'fastify';
import type { LitheTokenizer } from '@lithe/core';
import { completionPromptIds } from '../prompt.js';
import type { TokenLogprob } from '../request-logits.js';
import { parseCompletionRequest, type CompletionRequest } from '../request-schema.js';
import { finiteLogprob, openAIFinishReason, tokenPiece } from '../run-generation.js';
import type { ServerState } from '../state.js';
import { loadedPipeline, serveGeneration, type ChunkBase, type OutputFormat } from './serve-generation.js';

interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

/** The legacy completions logprobs object; `offset` is where the first token's text starts. */
function legacyLogprobs(tokenizer: LitheTokenizer, lps: TokenLogprob[], offset: number): LegacyLogprobs {
  const out: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let at = offset;
  for (const lp of lps) {
    const { token } = tokenPiece(tokenizer, lp.id);
    out.tokens.push(token);
    out.token_logprobs.push(finiteLogprob(lp.logprob));
    out.top_logprobs.push(Object.fromEntries(lp.top.map((t) => [tokenPiece(tokenizer, t.id).token, finiteLogprob(t.logprob)])));
    out.text_offset.push(at);
    at += token.length;
  }
  return out;
}

function chunk(base: ChunkBase, choices: unknown[]) {
  return {
    id: base.id,
    object: 'text_completion',
    created: base.created,
    model: base.model,
    system_fingerprint: null,
    choices,
    ...(base.includeUsage ? { usage: null } : {}),
  };
}

function completionFormat(state: ServerState, tokenizer: LitheTokenizer): OutputFormat<CompletionRequest> {
  let streamed = 0;
  return {
    endpoint: 'completion',
    idPrefix: 'cmpl',
    promptParam: 'prompt',
    promptIds: (pipeline, req) => completionPromptIds(pipeline, state.prompts, req.prompt),
    head: () => [],
    token: (base, text, lp) => {
      if (text === '' && !lp) return null;
      const logprobs = lp ? legacyLogprobs(tokenizer, [lp], streamed) : null;
      streamed += text.length;
      return chunk(base, [{ index: 0, text, logprobs, finish_reason: null }]);
    },
    finish: (base, reason) => chunk(base, [{ index: 0, text: '', logprobs: null, finish_reason: reason }]),
    usage: (base, usage) => ({ ...chunk(base, []), usage }),
    response: (base, result, lps, usage) => ({
      id: base.id,
      object: 'text_completion',
      created: base.created,
      model: base.model,
      system_fingerprint: null,
      choices: [{ index: 0, text: result.text, logprobs: lps ? legacyLogprobs(tokenizer, lps, 0) : null, finish_reason: openAIFinishReason(result.finishReason) }],
      usage,
    }),
  };
}

export function completionsRoute(app: FastifyInstance, state: ServerState): void {
  app.post('/v1/completions', async (request, reply) => {
    const pipeline = loadedPipeline(state);
    const body = parseCompletionRequest(request.body, pipeline.config.vocabSize);
    return serveGeneration(state, request, reply, body, completionFormat(state, pipeline.tokenizer));
  });
}
