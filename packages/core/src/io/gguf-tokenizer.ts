/**
 * A tokenizer.json-equivalent object (for `createTokenizer`) from GGUF's tokenizer.ggml.* metadata,
 * and the reverse (GGUF vocabulary arrays from an HF tokenizer.json) for the writer.
 *
 * - 'llama' (SentencePiece): tokens, scores, token types. Becomes a BPE model with byte fallback,
 *   the "▁" normalizer and decoder of HF's Llama tokenizer.json, and merges derived from the
 *   scores the way transformers' SentencePiece converter derives them (every split of a piece into
 *   two vocabulary pieces, by the piece's score).
 * - 'gpt2' (byte-level BPE): tokens and merges, with the pre-tokenizer `tokenizer.ggml.pre` names.
 */
import type { GGUFValue } from './gguf.js';

/** llama.cpp's token types. */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

type Json = Record<string, unknown>;

export interface GGUFTokenizerFiles {
  tokenizerJson: Json;
  tokenizerConfig: Json;
}

// Pre-tokenizer regexes of the byte-level vocabularies llama.cpp names in tokenizer.ggml.pre.
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const SPLITS: Record<string, string> = { 'llama-bpe': LLAMA3_SPLIT, llama3: LLAMA3_SPLIT, qwen2: QWEN2_SPLIT, smollm: LLAMA3_SPLIT };

function strings(v: GGUFValue | undefined, key: string, where: string): string[] {
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new Error(`${where}: ${key} must be an array of strings`);
  return v as string[];
}

function numbers(v: GGUFValue | undefined, key: string, n: number, where: string): number[] | null {
  if (v === undefined) return null;
  if (!Array.isArray(v) || v.length !== n || !v.every((s) => typeof s === 'number')) throw new Error(`${where}: ${key} must be an array of ${n} numbers`);
  return v as number[];
}

function tokenId(v: GGUFValue | undefined, n: number, key: string, where: string): number | null {
  if (v === undefined) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= n) {
    // llama.cpp writes -1 (as u32 0xffffffff) for "none" in some files.
    if (v === 0xffffffff || v === -1) return null;
    throw new Error(`${where}: ${key} is ${String(v)}, not a token id (the vocabulary has ${n} tokens)`);
  }
  return v;
}

/** Builds tokenizer.json and tokenizer_config.json contents from GGUF metadata. */
export function tokenizerFromGGUF(get: (key: string) => GGUFValue | undefined, where: string): GGUFTokenizerFiles {
  const model = get('tokenizer.ggml.model');
  if (model === undefined) throw new Error(`${where}: the file has no tokenizer (tokenizer.ggml.model is missing)`);
  const tokens = strings(get('tokenizer.ggml.tokens'), 'tokenizer.ggml.tokens', where);
  const n = tokens.length;
  const types = numbers(get('tokenizer.ggml.token_type'), 'tokenizer.ggml.token_type', n, where);
  const bos = tokenId(get('tokenizer.ggml.bos_token_id'), n, 'tokenizer.ggml.bos_token_id', where);
  const eos = tokenId(get('tokenizer.ggml.eos_token_id'), n, 'tokenizer.ggml.eos_token_id', where);
  const unk = tokenId(get('tokenizer.ggml.unknown_token_id'), n, 'tokenizer.ggml.unknown_token_id', where);
  const flag = (key: string, fallback: boolean) => {
    const v = get(key);
    return typeof v === 'boolean' ? v : fallback;
  };

  const vocab: Record<string, number> = {};
  for (let i = 0; i < n; i++) if (!Object.hasOwn(vocab, tokens[i])) vocab[tokens[i]] = i;
  const typeOf = (i: number) => types?.[i] ?? TokenType.NORMAL;
  const added = [];
  for (let i = 0; i < n; i++) {
    const t = typeOf(i);
    if (t === TokenType.CONTROL || t === TokenType.USER_DEFINED || t === TokenType.UNKNOWN || i === bos || i === eos) {
      added.push({ id: i, content: tokens[i], single_word: false, lstrip: false, rstrip: false, normalized: false, special: t !== TokenType.USER_DEFINED });
    }
  }

  let json: Json;
  if (model === 'llama') {
    const scores = numbers(get('tokenizer.ggml.scores'), 'tokenizer.ggml.scores', n, where) ?? tokens.map((_, i) => -i);
    const spacePrefix = flag('tokenizer.ggml.add_space_prefix', true);
    const addBos = flag('tokenizer.ggml.add_bos_token', true);
    const addEos = flag('tokenizer.ggml.add_eos_token', false);
    json = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: {
        type: 'Sequence',
        normalizers: [...(spacePrefix ? [{ type: 'Prepend', prepend: '▁' }] : []), { type: 'Replace', pattern: { String: ' ' }, content: '▁' }],
      },
      pre_tokenizer: null,
      post_processor: postProcessor(tokens, addBos ? bos : null, addEos ? eos : null),
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
          { type: 'ByteFallback' },
          { type: 'Fuse' },
          ...(spacePrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
        ],
      },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: unk !== null ? tokens[unk] : null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: true,
        byte_fallback: true,
        ignore_merges: false,
        vocab,
        merges: mergesFromScores(tokens, scores, vocab, (i) => typeOf(i) === TokenType.NORMAL),
      },
    };
  } else if (model === 'gpt2') {
    const merges = strings(get('tokenizer.ggml.merges'), 'tokenizer.ggml.merges', where).map((m) => {
      const at = m.indexOf(' ', 1);
      if (at < 0) throw new Error(`${where}: tokenizer.ggml.merges has an entry without a space: '${m}'`);
      return [m.slice(0, at), m.slice(at + 1)];
    });
    const pre = String(get('tokenizer.ggml.pre') ?? 'default');
    const split = SPLITS[pre];
    const addBos = flag('tokenizer.ggml.add_bos_token', false);
    const addEos = flag('tokenizer.ggml.add_eos_token', false);
    json = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: split
        ? {
            type: 'Sequence',
            pretokenizers: [
              { type: 'Split', pattern: { Regex: split }, behavior: 'Isolated', invert: false },
              { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
            ],
          }
        : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: postProcessor(tokens, addBos ? bos : null, addEos ? eos : null),
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: pre === 'llama-bpe' || pre === 'llama3',
        vocab,
        merges,
      },
    };
  } else {
    throw new Error(`${where}: tokenizer.ggml.model '${String(model)}' is not supported (lithe reads 'llama' and 'gpt2' vocabularies)`);
  }

  const template = get('tokenizer.chat_template');
  const tokenizerConfig: Json = {
    bos_token: bos !== null ? tokens[bos] : null,
    eos_token: eos !== null ? tokens[eos] : null,
    unk_token: unk !== null ? tokens[unk] : null,
    ...(typeof template === 'string' ? { chat_template: template } : {}),
  };
  return { tokenizerJson: json, tokenizerConfig };
}

function postProcessor(tokens: string[], bos: number | null, eos: number | null): Json {
  const special = (id: number, typeId: number) => ({ SpecialToken: { id: tokens[id], type_id: typeId } });
  const seq = (id: string, typeId: number) => ({ Sequence: { id, type_id: typeId } });
  const wrap = (id: string, typeId: number) => [...(bos !== null ? [special(bos, typeId)] : []), seq(id, typeId), ...(eos !== null ? [special(eos, typeId)] : [])];
  const specials: Json = {};
  for (const id of [bos, eos]) if (id !== null) specials[tokens[id]] = { id: tokens[id], ids: [id], tokens: [tokens[id]] };
  return { type: 'TemplateProcessing', single: wrap('A', 0), pair: [...wrap('A', 0), ...wrap('B', 1)], special_tokens: specials };
}

/**
 * SentencePiece merges from scores, as transformers' SentencePieceExtractor does: for each piece,
 * highest score first, every split into two pieces that are both in the vocabulary, ordered by the
 * ids of the two halves.
 */
export function mergesFromScores(tokens: string[], scores: number[], vocab: Record<string, number>, mergeable: (id: number) => boolean): [string, string][] {
  const order = tokens.map((_, i) => i).filter(mergeable).sort((a, b) => scores[b] - scores[a] || a - b);
  const merges: [string, string][] = [];
  for (const id of order) {
    const chars = Array.from(tokens[id]);
    if (chars.length < 2) continue;
    const local: [number, number, string, string][] = [];
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join('');
      const r = chars.slice(k).join('');
      if (Object.hasOwn(vocab, l) && Object.hasOwn(vocab, r)) local.push([vocab[l], vocab[r], l, r]);
    }
    local.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (const [, , l, r] of local) merges.push([l, r]);
  }
  return merges;
}

export interface GGUFVocabulary {
  model: 'llama' | 'gpt2';
  tokens: string[];
  scores: number[];
  types: number[];
  merges: string[] | null;
  pre: string | null;
  bos: number | null;
  eos: number | null;
  unk: number | null;
  pad: number | null;
  addBos: boolean;
  addEos: boolean;
  addSpacePrefix: boolean;
}

/**
 * GGUF vocabulary arrays from an HF tokenizer.json (a BPE model): SentencePiece-style vocabularies
 * (byte fallback, "▁") become 'llama' with scores that rank each piece by the first merge that
 * makes it, so llama.cpp's score-driven merging and the merges derived back from the scores both
 * follow the file's merge order; byte-level ones become 'gpt2' with the merges as they are.
 */
export function vocabularyFromTokenizerJson(json: Json, config: Json): GGUFVocabulary {
  const model = json.model as Json | undefined;
  if (!model || model.type !== 'BPE') throw new Error(`tokenizer.json: only BPE tokenizers can be written to GGUF (this one is ${String(model?.type)})`);
  const vocab = model.vocab as Record<string, number>;
  const addedTokens = (json.added_tokens as { id: number; content: string; special: boolean }[] | undefined) ?? [];
  let n = 0;
  for (const id of Object.values(vocab)) n = Math.max(n, id + 1);
  for (const t of addedTokens) n = Math.max(n, t.id + 1);
  const tokens: string[] = new Array(n).fill('');
  const filled = new Array<boolean>(n).fill(false);
  const fill = (id: number, piece: string) => {
    tokens[id] = piece;
    filled[id] = true;
  };
  for (const [piece, id] of Object.entries(vocab)) fill(id, piece);
  for (const t of addedTokens) fill(t.id, t.content);
  for (let i = 0; i < n; i++) if (!filled[i]) tokens[i] = `[PAD${i}]`;

  const merges = ((model.merges as (string | [string, string])[] | undefined) ?? []).map((m) => (typeof m === 'string' ? m : m.join(' ')));
  const spm = model.byte_fallback === true;
  const special = new Set(addedTokens.filter((t) => t.special).map((t) => t.id));
  const userDefined = new Set(addedTokens.filter((t) => !t.special).map((t) => t.id));
  const idOf = (v: unknown): number | null => {
    const content = typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as Json).content === 'string' ? ((v as Json).content as string) : null;
    if (content === null) return null;
    const id = tokens.indexOf(content);
    return id >= 0 ? id : null;
  };
  const unk = typeof model.unk_token === 'string' ? idOf(model.unk_token) : idOf(config.unk_token);
  const types = tokens.map((t, i) => {
    if (i === unk) return TokenType.UNKNOWN;
    if (special.has(i)) return TokenType.CONTROL;
    if (userDefined.has(i)) return TokenType.USER_DEFINED;
    if (!filled[i]) return TokenType.UNUSED;
    if (spm && /^<0x[0-9A-F]{2}>$/.test(t)) return TokenType.BYTE;
    return TokenType.NORMAL;
  });
  const scores = new Array<number>(n).fill(0);
  if (spm) {
    const rank = new Map<string, number>();
    merges.forEach((m, r) => {
      const piece = m.replace(' ', '');
      if (!rank.has(piece)) rank.set(piece, r);
    });
    for (let i = 0; i < n; i++) if (types[i] === TokenType.NORMAL) scores[i] = -(rank.get(tokens[i]) ?? (Array.from(tokens[i]).length > 1 ? 1e9 : 0));
  }
  const post = json.post_processor as Json | null;
  const single = (post?.single as Json[] | undefined) ?? [];
  const bos = idOf(config.bos_token);
  const eos = idOf(config.eos_token);
  const specialIn = (id: number | null, at: 'first' | 'last') => {
    if (id === null || single.length === 0) return false;
    const item = single[at === 'first' ? 0 : single.length - 1] as { SpecialToken?: { id: string } };
    return item.SpecialToken?.id === tokens[id];
  };
  const addBos = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : specialIn(bos, 'first');
  const addEos = typeof config.add_eos_token === 'boolean' ? config.add_eos_token : specialIn(eos, 'last');
  const normalizer = JSON.stringify(json.normalizer ?? null) + JSON.stringify(json.pre_tokenizer ?? null);
  return {
    model: spm ? 'llama' : 'gpt2',
    tokens,
    scores,
    types,
    merges: spm ? null : merges,
    pre: spm ? null : 'default',
    bos,
    eos,
    unk,
    pad: idOf(config.pad_token),
    addBos,
    addEos,
    addSpacePrefix: !spm || normalizer.includes('Prepend') || normalizer.includes('"prepend_scheme":"always"') || normalizer.includes('"prepend_scheme":"first"') || normalizer.includes('"add_prefix_space":true'),
  };
}
