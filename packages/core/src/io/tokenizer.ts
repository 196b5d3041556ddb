/**
 * Tokenizer wrapper around `@huggingface/tokenizers` (pure JS, browser-safe), built from a
 * model's tokenizer.json and tokenizer_config.json.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { pickChatTemplate, renderChatTemplate } from './chat-template.js';
import { checkTokenizerJson } from './tokenizer-json-check.js';
import type { ChatMessage } from './chat-template.js';

export interface CreateTokenizerOptions {
  /** Overrides the BOS id from tokenizer_config.json (e.g. from config.json). */
  bosTokenId?: number | null;
  /** Extra EOS ids, e.g. generation_config.json's `eos_token_id` (a number or a list). */
  eosTokenIds?: number | readonly number[];
  /** Chat template to use instead of tokenizer_config.json's (e.g. from chat_template.jinja). */
  chatTemplate?: string;
  /** Where tokenizer.json came from, for error messages (default 'tokenizer.json'). */
  location?: string;
}

export interface EncodeOptions {
  /** Add the special tokens of the post-processor, e.g. BOS for Llama (default true). */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Leave out special tokens such as <s> and </s> (default true). */
  skipSpecialTokens?: boolean;
}

export interface ApplyChatTemplateOptions {
  /** Append the header that starts the assistant's turn (default true). */
  addGenerationPrompt?: boolean;
  /** More template variables. */
  extra?: Record<string, unknown>;
}

type JsonObject = Record<string, unknown>;

/**
 * What LitheTokenizer uses of `@huggingface/tokenizers`' Tokenizer. Declared here so core's public
 * types do not pull in the library's own .d.ts (which needs the DOM lib for TextEncoder).
 */
export interface TokenizerEngine {
  encode(text: string, opts: { add_special_tokens: boolean }): { ids: number[] };
  decode(ids: number[], opts: { skip_special_tokens: boolean }): string;
  tokenize(text: string, opts: { add_special_tokens: boolean }): string[];
  id_to_token(id: number): string | undefined;
  token_to_id(token: string): number | undefined;
  get_vocab(withAddedTokens: boolean): Map<string, number>;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseJson(name: string, value: unknown): JsonObject {
  let v = value;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch (e) {
      throw new Error(`${name} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  }
  if (!isObject(v)) {
    throw new Error(`${name} must be a JSON object, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
  }
  return v;
}

// Special tokens in tokenizer_config.json are strings or serialized AddedTokens ({ content }).
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  return null;
}

export class LitheTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: number[];
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly chatTemplate: string | null;

  constructor(
    private readonly inner: TokenizerEngine,
    config: JsonObject,
    opts: CreateTokenizerOptions = {},
  ) {
    let maxId = -1;
    for (const id of inner.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    this.bosToken = tokenContent(config.bos_token);
    this.eosToken = tokenContent(config.eos_token);
    this.bosTokenId =
      opts.bosTokenId !== undefined ? opts.bosTokenId : this.bosToken !== null ? this.tokenToId(this.bosToken) : null;

    const eos = new Set<number>();
    const configEos = this.eosToken !== null ? this.tokenToId(this.eosToken) : null;
    if (configEos !== null) eos.add(configEos);
    const extra = opts.eosTokenIds;
    for (const id of typeof extra === 'number' ? [extra] : (extra ?? [])) eos.add(id);
    this.eosTokenIds = [...eos];

    this.chatTemplate = opts.chatTemplate ?? pickChatTemplate(config.chat_template);
  }

  encode(text: string, { addSpecialTokens = true }: EncodeOptions = {}): number[] {
    return this.inner.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: ArrayLike<number>, { skipSpecialTokens = true }: DecodeOptions = {}): string {
    return this.inner.decode(Array.isArray(ids) ? ids : Array.from(ids), { skip_special_tokens: skipSpecialTokens });
  }

  /** Token pieces as the model sees them, e.g. ['▁Hello', '▁world']. */
  tokenize(text: string, { addSpecialTokens = false }: EncodeOptions = {}): string[] {
    return this.inner.tokenize(text, { add_special_tokens: addSpecialTokens });
  }

  idToToken(id: number): string | null {
    return this.inner.id_to_token(id) ?? null;
  }

  tokenToId(token: string): number | null {
    return this.inner.token_to_id(token) ?? null;
  }

  isEos(id: number): boolean {
    return this.eosTokenIds.includes(id);
  }

  /**
   * Renders a conversation into prompt text. Templates usually start with the BOS token, so
   * encode the result with `addSpecialTokens: false` to avoid a doubled BOS.
   */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ApplyChatTemplateOptions = {}): string {
    return renderChatTemplate(this.chatTemplate, messages, {
      bosToken: this.bosToken ?? '',
      eosToken: this.eosToken ?? '',
      addGenerationPrompt: opts.addGenerationPrompt ?? true,
      extra: opts.extra,
    });
  }
}

/**
 * Builds a tokenizer from the contents of tokenizer.json and tokenizer_config.json (parsed
 * objects or JSON text). Throws an error naming the file and what is wrong with it.
 */
export function createTokenizer(
  tokenizerJson: unknown,
  tokenizerConfig: unknown = {},
  opts: CreateTokenizerOptions = {},
): LitheTokenizer {
  if (tokenizerJson === undefined || tokenizerJson === null) {
    throw new Error('tokenizer.json is missing: a tokenizer needs the model\'s tokenizer.json');
  }
  const where = opts.location ?? 'tokenizer.json';
  const json = parseJson(where, tokenizerJson);
  const config = parseJson('tokenizer_config.json', tokenizerConfig ?? {});
  if (!isObject(json.model)) throw new Error(`${where} has no "model" object`);
  // Keys the library requires; each may be null but must be present, as in files HF writes.
  for (const key of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) {
    if (!(key in json)) throw new Error(`${where} has no "${key}" key (null is allowed, missing is not)`);
  }
  checkTokenizerJson(json, where);
  let inner: TokenizerEngine;
  try {
    inner = new Tokenizer(json, config);
  } catch (e) {
    throw new Error(`${where} could not be loaded: ${(e as Error).message}`, { cause: e });
  }
  return new LitheTokenizer(inner, config, opts);
}
