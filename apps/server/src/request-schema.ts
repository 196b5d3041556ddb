/**
 * Validation of the JSON bodies of /v1/chat/completions and /v1/completions into the options the
 * generation needs. Every failure is a 400 naming the field (`param`) and the accepted values;
 * the value sent is never echoed back.
 */
import type { ChatMessage } from '@lithe/core';
import { invalidRequest } from './openai-errors.js';

type Json = Record<string, unknown>;

export interface SamplingRequest {
  model: string;
  stream: boolean;
  /** stream_options.include_usage: a last chunk with the usage and no choices. */
  includeUsage: boolean;
  /** max_completion_tokens ?? max_tokens; undefined: the room left in the context (capped). */
  maxTokens: number | undefined;
  temperature: number;
  topP: number | undefined;
  topK: number | undefined;
  minP: number | undefined;
  repetitionPenalty: number | undefined;
  seed: number | undefined;
  stop: string[];
  presencePenalty: number;
  frequencyPenalty: number;
  /** logit_bias: token id -> bias added to its logit. */
  logitBias: Map<number, number> | null;
  /** Top alternatives to return per token (0..20), or null when logprobs are off. */
  logprobs: number | null;
}

export interface ChatRequest extends SamplingRequest {
  kind: 'chat';
  messages: ChatMessage[];
}

export interface CompletionRequest extends SamplingRequest {
  kind: 'completion';
  /** Text, or token ids used as given. */
  prompt: string | number[];
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant']);
const MAX_STOP = 4;

/** Lone UTF-16 surrogates (valid JSON escapes, invalid text) become U+FFFD. */
export function wellFormed(s: string): string {
  return s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

interface NumberRule {
  min?: number;
  max?: number;
  /** min is excluded from the range. */
  minExclusive?: boolean;
  integer?: boolean;
  range: string;
}

function optionalNumber(body: Json, key: string, rule: NumberRule): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  const ok =
    typeof v === 'number' &&
    Number.isFinite(v) &&
    (!rule.integer || Number.isSafeInteger(v)) &&
    (rule.min === undefined || (rule.minExclusive ? v > rule.min : v >= rule.min)) &&
    (rule.max === undefined || v <= rule.max);
  if (!ok) throw invalidRequest(`'${key}' must be ${rule.range}.`, key);
  return v;
}

function optionalBoolean(body: Json, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalidRequest(`'${key}' must be a boolean.`, key);
  return v;
}

function requireModel(body: Json): string {
  const m = body.model;
  if (m === undefined || m === null) throw invalidRequest("'model' is required.", 'model');
  if (typeof m !== 'string') throw invalidRequest("'model' must be a string.", 'model');
  return m;
}

function parseStop(body: Json): string[] {
  const v = body.stop;
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > MAX_STOP || !list.every((s) => typeof s === 'string' && s.length > 0)) {
    throw invalidRequest(`'stop' must be a non-empty string or an array of up to ${MAX_STOP} non-empty strings.`, 'stop');
  }
  return list.map(wellFormed);
}

function parseLogitBias(body: Json, vocabSize: number): Map<number, number> | null {
  const v = body.logit_bias;
  if (v === undefined || v === null) return null;
  if (!isObject(v)) throw invalidRequest("'logit_bias' must be an object mapping token ids to numbers in [-100, 100].", 'logit_bias');
  const out = new Map<number, number>();
  for (const [key, bias] of Object.entries(v)) {
    const id = /^\d{1,10}$/.test(key) ? Number(key) : NaN;
    if (!(Number.isSafeInteger(id) && id < vocabSize)) throw invalidRequest(`'logit_bias' keys must be token ids in [0, ${vocabSize}).`, 'logit_bias');
    if (!(typeof bias === 'number' && bias >= -100 && bias <= 100)) throw invalidRequest("'logit_bias' values must be numbers in [-100, 100].", 'logit_bias');
    out.set(id, bias);
  }
  return out.size > 0 ? out : null;
}

/** Fields both endpoints share. `vocabSize` bounds token ids (logit_bias, prompt ids). */
function parseSampling(body: Json, vocabSize: number): Omit<SamplingRequest, 'logprobs'> {
  const n = optionalNumber(body, 'n', { min: 1, integer: true, range: 'a positive integer' });
  if (n !== undefined && n !== 1) throw invalidRequest("Only 'n' = 1 is supported: this server returns one choice per request.", 'n');
  const bestOf = optionalNumber(body, 'best_of', { min: 1, integer: true, range: 'a positive integer' });
  if (bestOf !== undefined && bestOf !== 1) throw invalidRequest("Only 'best_of' = 1 is supported.", 'best_of');

  const stream = optionalBoolean(body, 'stream') ?? false;
  let includeUsage = false;
  const so = body.stream_options;
  if (so !== undefined && so !== null) {
    if (!stream) throw invalidRequest("'stream_options' is only allowed when 'stream' is true.", 'stream_options');
    if (!isObject(so)) throw invalidRequest("'stream_options' must be an object.", 'stream_options');
    const iu = so.include_usage;
    if (iu !== undefined && iu !== null && typeof iu !== 'boolean') throw invalidRequest("'stream_options.include_usage' must be a boolean.", 'stream_options.include_usage');
    includeUsage = iu === true;
  }

  const tokens = { min: 1, integer: true, range: 'an integer >= 1' };
  const maxTokens = optionalNumber(body, 'max_completion_tokens', tokens) ?? optionalNumber(body, 'max_tokens', tokens);
  const topP = optionalNumber(body, 'top_p', { min: 0, max: 1, range: 'a number in [0, 1]' });
  const topK = optionalNumber(body, 'top_k', { min: -1, integer: true, range: 'an integer >= -1 (-1 or 0 = off)' });
  const penalty = { min: -2, max: 2, range: 'a number in [-2, 2]' };
  const temperature = optionalNumber(body, 'temperature', { min: 0, max: 2, range: 'a number in [0, 2]' }) ?? 1;
  return {
    model: requireModel(body),
    stream,
    includeUsage,
    maxTokens,
    // top_p = 0 keeps only the most likely token.
    temperature: topP === 0 ? 0 : temperature,
    topP: topP === 0 ? undefined : topP,
    topK: topK !== undefined && topK > 0 ? topK : undefined,
    minP: optionalNumber(body, 'min_p', { min: 0, max: 1, range: 'a number in [0, 1]' }),
    repetitionPenalty: optionalNumber(body, 'repetition_penalty', { min: 0, minExclusive: true, range: 'a number > 0' }),
    seed: optionalNumber(body, 'seed', { integer: true, range: 'an integer' }),
    stop: parseStop(body),
    presencePenalty: optionalNumber(body, 'presence_penalty', penalty) ?? 0,
    frequencyPenalty: optionalNumber(body, 'frequency_penalty', penalty) ?? 0,
    logitBias: parseLogitBias(body, vocabSize),
  };
}

function messageContent(v: unknown, i: number): string {
  const param = `messages[${i}].content`;
  if (typeof v === 'string') return wellFormed(v);
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) {
    let text = '';
    for (const part of v) {
      if (!isObject(part) || part.type !== 'text') throw invalidRequest(`'${param}' parts must be of type 'text': this server handles text only.`, param);
      if (typeof part.text !== 'string') throw invalidRequest(`'${param}' text parts need a string 'text'.`, param);
      text += part.text;
    }
    return wellFormed(text);
  }
  throw invalidRequest(`'${param}' must be a string or an array of text parts.`, param);
}

function parseMessages(body: Json): ChatMessage[] {
  const v = body.messages;
  if (v === undefined || v === null) throw invalidRequest("'messages' is required.", 'messages');
  if (!Array.isArray(v) || v.length === 0) throw invalidRequest("'messages' must be a non-empty array.", 'messages');
  return v.map((m, i): ChatMessage => {
    if (!isObject(m)) throw invalidRequest(`'messages[${i}]' must be an object.`, `messages[${i}]`);
    if (typeof m.role !== 'string' || !ROLES.has(m.role)) {
      throw invalidRequest(`'messages[${i}].role' must be one of ${[...ROLES].join(', ')}.`, `messages[${i}].role`);
    }
    if (m.tool_calls !== undefined && m.tool_calls !== null) throw invalidRequest('Tool calls are not supported.', `messages[${i}].tool_calls`);
    // 'developer' is OpenAI's newer name for the system message.
    return { role: m.role === 'developer' ? 'system' : m.role, content: messageContent(m.content, i) };
  });
}

function rejectUnsupported(body: Json): void {
  if (Array.isArray(body.tools) && body.tools.length > 0) throw invalidRequest('Tools are not supported.', 'tools');
  if (body.tool_choice !== undefined && body.tool_choice !== null && body.tool_choice !== 'none') throw invalidRequest('Tools are not supported.', 'tool_choice');
  const rf = body.response_format;
  if (rf !== undefined && rf !== null && !(isObject(rf) && rf.type === 'text')) {
    throw invalidRequest("Only 'response_format' {\"type\": \"text\"} is supported.", 'response_format');
  }
}

export function parseChatRequest(body: unknown, vocabSize: number): ChatRequest {
  if (!isObject(body)) throw invalidRequest('The request body must be a JSON object.');
  rejectUnsupported(body);
  const messages = parseMessages(body);
  const base = parseSampling(body, vocabSize);
  const want = optionalBoolean(body, 'logprobs') ?? false;
  const top = optionalNumber(body, 'top_logprobs', { min: 0, max: 20, integer: true, range: 'an integer in [0, 20]' });
  if (top !== undefined && !want) throw invalidRequest("'top_logprobs' needs 'logprobs' set to true.", 'top_logprobs');
  return { kind: 'chat', ...base, messages, logprobs: want ? (top ?? 0) : null };
}

function parsePrompt(body: Json, vocabSize: number): string | number[] {
  let v = body.prompt;
  if (v === undefined || v === null) throw invalidRequest("'prompt' is required.", 'prompt');
  // A batch of one is the same as the single prompt.
  if (Array.isArray(v) && v.length === 1 && (typeof v[0] === 'string' || Array.isArray(v[0]))) v = v[0];
  if (typeof v === 'string') return wellFormed(v);
  if (Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === 'number')) {
    if (!v.every((t: number) => Number.isSafeInteger(t) && t >= 0 && t < vocabSize)) {
      throw invalidRequest(`'prompt' token ids must be integers in [0, ${vocabSize}).`, 'prompt');
    }
    return v as number[];
  }
  if (Array.isArray(v) && v.length > 1) throw invalidRequest("Only one prompt per request is supported: send a string or one array of token ids.", 'prompt');
  throw invalidRequest("'prompt' must be a string or a non-empty array of token ids.", 'prompt');
}

export function parseCompletionRequest(body: unknown, vocabSize: number): CompletionRequest {
  if (!isObject(body)) throw invalidRequest('The request body must be a JSON object.');
  const prompt = parsePrompt(body, vocabSize);
  const base = parseSampling(body, vocabSize);
  if (optionalBoolean(body, 'echo')) throw invalidRequest("'echo' is not supported.", 'echo');
  if (typeof body.suffix === 'string' && body.suffix.length > 0) throw invalidRequest("'suffix' is not supported.", 'suffix');
  const lp = optionalNumber(body, 'logprobs', { min: 0, max: 5, integer: true, range: 'an integer in [0, 5]' });
  return { kind: 'completion', ...base, prompt, logprobs: lp ?? null };
}
