/**
 * Structural checks of tokenizer.json before it reaches the tokenizer library, which accepts many
 * broken files silently (a vocabulary that is not an object, malformed merges, unknown model types)
 * and fails later, or never. Each error names the file and the field, as HF tokenizers does.
 */

type Json = Record<string, unknown>;

/** The tokenizer models lithe can run, as tokenizer.json's `model.type` names them. */
export const TOKENIZER_MODEL_TYPES = ['BPE', 'Unigram', 'WordPiece'] as const;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v) ?? String(v);
  return `${typeof v} ${s.length > 40 ? `${s.slice(0, 37)}...` : s}`;
}

/** Throws `<where>: <field> ...` for the first structural problem found. */
export function checkTokenizerJson(json: Json, where = 'tokenizer.json'): void {
  const fail = (field: string, problem: string): never => {
    throw new Error(`${where}: ${field} ${problem}`);
  };
  const model = json.model;
  if (!isObject(model)) fail('"model"', `must be an object, got ${describe(model)}`);
  const m = model as Json;
  const type = m.type;
  if (type !== undefined && !(TOKENIZER_MODEL_TYPES as readonly unknown[]).includes(type)) {
    fail('"model.type"', `is ${describe(type)}, which is not supported (supported: ${TOKENIZER_MODEL_TYPES.join(', ')})`);
  }

  if (type === 'Unigram' || (type === undefined && Array.isArray(m.vocab))) {
    if (!Array.isArray(m.vocab)) fail('"model.vocab"', `must be an array of [piece, score] pairs for a Unigram model, got ${describe(m.vocab)}`);
    (m.vocab as unknown[]).forEach((e, i) => {
      if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || typeof e[1] !== 'number' || !Number.isFinite(e[1])) {
        fail(`"model.vocab"[${i}]`, `must be a [piece, score] pair, got ${describe(e)}`);
      }
    });
  } else {
    if (!isObject(m.vocab)) fail('"model.vocab"', `must be an object mapping tokens to ids, got ${describe(m.vocab)}`);
    for (const [token, id] of Object.entries(m.vocab as Json)) {
      if (!isId(id)) fail(`"model.vocab" entry ${JSON.stringify(token)}`, `must map to a non-negative integer id, got ${describe(id)}`);
    }
  }

  if (type === 'BPE' || (type === undefined && 'merges' in m)) {
    const merges = m.merges;
    if (!Array.isArray(merges)) fail('"model.merges"', `must be an array of merges ("a b" strings or [a, b] pairs), got ${describe(merges)}`);
    (merges as unknown[]).forEach((e, i) => {
      const ok = typeof e === 'string' ? e.split(' ').length === 2 : Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && typeof e[1] === 'string';
      if (!ok) fail(`"model.merges"[${i}]`, `must be "a b" (two tokens and one space) or a pair [a, b] of strings, got ${describe(e)}`);
    });
  }

  const added = json.added_tokens;
  if (added !== undefined && added !== null) {
    if (!Array.isArray(added)) fail('"added_tokens"', `must be an array, got ${describe(added)}`);
    (added as unknown[]).forEach((e, i) => {
      if (!isObject(e)) fail(`"added_tokens"[${i}]`, `must be an object with "id" and "content", got ${describe(e)}`);
      const t = e as Json;
      if (!isId(t.id)) fail(`"added_tokens"[${i}].id`, `must be a non-negative integer, got ${describe(t.id)}`);
      if (typeof t.content !== 'string' || t.content === '') fail(`"added_tokens"[${i}].content`, `must be a non-empty string, got ${describe(t.content)}`);
    });
  }
}
