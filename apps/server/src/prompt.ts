/**
 * Request prompts to token ids, and the context checks that run before any generation starts:
 * text too long for the context by its length alone is refused before it is tokenized, and the
 * templating and tokenizing run in the prompt worker, off the event loop.
 *
 * Chat messages have their special-token literals broken up (special-literals.ts). Text
 * completions keep the prompt as the model's raw input (special-token literals are control
 * tokens there), as with token ids.
 */
import { MissingChatTemplateError, type ChatMessage, type LitheTokenizer, type Pipeline } from '@lithe/core';
import { internalError, invalidRequest, OpenAIError, templateFailed } from './openai-errors.js';
import { TemplateRenderError, type PromptWorker } from './prompt-worker.js';
import { plainText } from './special-literals.js';


const longestPieces = new WeakMap<LitheTokenizer, number>();

/**
 * The most characters one token can stand for: the longest vocabulary piece. A piece's raw
 * form is never shorter than its text (`▁` is one space, a byte-level symbol one byte, `<0x41>`
 * one byte), so text longer than context × this cannot fit the context whatever it is.
 */
export function longestPiece(tokenizer: LitheTokenizer): number {
  let n = longestPieces.get(tokenizer);
  if (n === undefined) {
    n = 1;
    for (let id = 0; id < tokenizer.vocabSize; id++) n = Math.max(n, tokenizer.idToToken(id)?.length ?? 0);
    longestPieces.set(tokenizer, n);
  }
  return n;
}

/** The longest prompt text, in characters, that can still fit this pipeline's context. */
export function maxPromptChars(pipeline: Pipeline): number {
  return pipeline.cacheSize * longestPiece(pipeline.tokenizer);
}

/** Refuses text that cannot fit the context by its length alone, before any tokenizing. */
function checkLength(pipeline: Pipeline, chars: number, param: string): void {
  // A rolling cache (--window) takes prompts of any length.
  if (pipeline.unboundedContext) return;
  if (chars > maxPromptChars(pipeline)) throw tooLong(pipeline, chars, param);
}

const tooLong = (pipeline: Pipeline, chars: number, param: string) =>
  invalidRequest(
    `The ${param} has ${chars} characters; this model's context of ${pipeline.cacheSize} tokens holds at most ${maxPromptChars(pipeline)} (${longestPiece(pipeline.tokenizer)} per token at most).`,
    param,
    'context_length_exceeded',
  );

/** Template errors (raise_exception, e.g. roles out of order) are the request's; the rest the server's. */
function renderError(e: unknown): OpenAIError {
  if (e instanceof OpenAIError) return e;
  if (e instanceof TemplateRenderError) return invalidRequest(e.message.slice(0, 500), 'messages');
  return templateFailed('the prompt worker failed');
}

/** The chat prompt as token ids; the template renders in the worker, under its budget. */
export async function chatPromptIds(pipeline: Pipeline, worker: PromptWorker, messages: readonly ChatMessage[]): Promise<number[]> {
  checkLength(pipeline, messages.reduce((n, m) => n + m.content.length, 0), 'messages');
  // Every templated message costs at least one token.
  if (messages.length > pipeline.cacheSize && !pipeline.unboundedContext) {
    throw invalidRequest(`There are more messages than this model's context of ${pipeline.cacheSize} tokens can hold.`, 'messages', 'context_length_exceeded');
  }
  const { tokenizer } = pipeline;
  if (!tokenizer.chatTemplate) throw invalidRequest(new MissingChatTemplateError().message, 'messages');
  // What tokenizer.applyChatTemplate passes.
  const options = { bosToken: tokenizer.bosToken ?? '', eosToken: tokenizer.eosToken ?? '', addGenerationPrompt: true };
  if (worker.encodes) {
    const r = await worker.chat(tokenizer.chatTemplate, messages, options, maxPromptChars(pipeline)).catch((e: unknown) => Promise.reject(renderError(e)));
    if ('tooLong' in r) throw tooLong(pipeline, r.tooLong, 'messages');
    return r.ids;
  }
  // A worker without a tokenizer (no model files to build one from) only renders.
  const safe = messages.map((m) => ({ role: m.role, content: plainText(tokenizer, m.content) }));
  const text = await worker.render(tokenizer.chatTemplate, safe, options).catch((e: unknown) => Promise.reject(renderError(e)));
  checkLength(pipeline, text.length, 'messages');
  // The template writes the BOS itself.
  return tokenizer.encode(text, { addSpecialTokens: false });
}

export async function completionPromptIds(pipeline: Pipeline, worker: PromptWorker, prompt: string | number[]): Promise<number[]> {
  if (typeof prompt !== 'string') return prompt;
  checkLength(pipeline, prompt.length, 'prompt');
  if (!worker.encodes) return pipeline.encode(prompt);
  return worker.encode(prompt).catch((e: unknown) => Promise.reject(e instanceof OpenAIError ? e : internalError()));
}

/**
 * The completion length to ask for: the request's, or the model's default (`pipeline.defaultMaxTokens`,
 * as in the API and the CLI) within what is left of the context.
 * A 400 when the prompt and the completion do not fit in the context.
 */
export function completionBudget(pipeline: Pipeline, promptTokens: number, requested: number | undefined, param: string): number {
  const context = pipeline.cacheSize;
  const room = context - promptTokens;
  if (promptTokens === 0) throw invalidRequest(`The ${param} is empty.`, param);
  if (pipeline.unboundedContext) return requested ?? pipeline.defaultMaxTokens;
  if (requested === undefined) {
    if (room < 1) {
      throw invalidRequest(
        `This model's maximum context length is ${context} tokens; the ${param} has ${promptTokens} tokens, which leaves no room for a completion.`,
        param,
        'context_length_exceeded',
      );
    }
    return Math.min(room, pipeline.defaultMaxTokens);
  }
  if (promptTokens + requested > context) {
    throw invalidRequest(
      `This model's maximum context length is ${context} tokens. However, you requested ${promptTokens + requested} tokens (${promptTokens} in the ${param}, ${requested} for the completion). Please reduce the length of the ${param} or the completion.`,
      param,
      'context_length_exceeded',
    );
  }
  return requested;
}
