/**
 * Request prompts to token ids, and the context check that runs before any generation starts.
 *
 * Chat message content is text: a special-token literal typed by a user (`</s>`, `<s>`,
 * `<|eot_id|>`...) must not become a control token when the templated prompt is tokenized. Each
 * literal found in a message is broken up with a zero-width space after its first character, so
 * the model reads the characters and never the control token. Text completions keep the prompt
 * as the model's raw input (special-token literals are control tokens there), as with token ids.
 */
import type { ChatMessage, Pipeline } from '@lithe/core';
import { invalidRequest } from './openai-errors.js';

/** Default completion length when the request gives none: the room left, capped. */
export const DEFAULT_MAX_TOKENS_CAP = 4096;
/** No vocabulary piece is longer than this many characters, so longer text cannot fit the context. */
const MAX_CHARS_PER_TOKEN = 64;
const ZWSP = '\u200B';

/** The literal text of each special token that `text` contains. */
function specialLiterals(pipeline: Pipeline, text: string): Set<string> {
  const found = new Set<string>();
  const { tokenizer } = pipeline;
  for (const id of new Set(tokenizer.encode(text, { addSpecialTokens: false }))) {
    // A special token decodes to nothing once special tokens are skipped.
    if (tokenizer.decode([id]) !== '') continue;
    const literal = tokenizer.decode([id], { skipSpecialTokens: false });
    if (literal.length > 0 && text.includes(literal)) found.add(literal);
  }
  return found;
}

/** `content` with every special-token literal broken up so it tokenizes as plain text. */
export function plainText(pipeline: Pipeline, content: string): string {
  let out = content;
  for (const literal of specialLiterals(pipeline, content)) {
    out = out.split(literal).join(literal[0] + ZWSP + literal.slice(1));
  }
  return out;
}

function checkLength(pipeline: Pipeline, chars: number, param: string): void {
  if (chars > pipeline.cacheSize * MAX_CHARS_PER_TOKEN) {
    throw invalidRequest(`The ${param} is too long for this model's context of ${pipeline.cacheSize} tokens.`, param, 'context_length_exceeded');
  }
}

export function chatPromptIds(pipeline: Pipeline, messages: readonly ChatMessage[]): number[] {
  checkLength(pipeline, messages.reduce((n, m) => n + m.content.length, 0), 'messages');
  // Every templated message costs at least one token.
  if (messages.length > pipeline.cacheSize) {
    throw invalidRequest(`There are more messages than this model's context of ${pipeline.cacheSize} tokens can hold.`, 'messages', 'context_length_exceeded');
  }
  const safe = messages.map((m) => ({ role: m.role, content: plainText(pipeline, m.content) }));
  let text: string;
  try {
    text = pipeline.tokenizer.applyChatTemplate(safe, { addGenerationPrompt: true });
  } catch (e) {
    // Template errors (raise_exception in the template, e.g. roles out of order) come from the
    // model's template, not from the request's text.
    const msg = e instanceof Error ? e.message : 'the chat template failed';
    throw invalidRequest(msg.slice(0, 500), 'messages');
  }
  // The template writes the BOS itself.
  return pipeline.tokenizer.encode(text, { addSpecialTokens: false });
}

export function completionPromptIds(pipeline: Pipeline, prompt: string | number[]): number[] {
  if (typeof prompt !== 'string') return prompt;
  checkLength(pipeline, prompt.length, 'prompt');
  return pipeline.encode(prompt);
}

/**
 * The completion length to ask for: the request's, or what is left of the context (capped).
 * A 400 when the prompt and the completion do not fit in the context.
 */
export function completionBudget(pipeline: Pipeline, promptTokens: number, requested: number | undefined, param: string): number {
  const context = pipeline.cacheSize;
  const room = context - promptTokens;
  if (promptTokens === 0) throw invalidRequest(`The ${param} is empty.`, param);
  if (requested === undefined) {
    if (room < 1) {
      throw invalidRequest(
        `This model's maximum context length is ${context} tokens; the ${param} has ${promptTokens} tokens, which leaves no room for a completion.`,
        param,
        'context_length_exceeded',
      );
    }
    return Math.min(room, DEFAULT_MAX_TOKENS_CAP);
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
