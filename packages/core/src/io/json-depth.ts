/**
 * Deeply nested JSON parses fine but overflows the stack of whatever walks it next (stringify,
 * recursive checks) with "Maximum call stack size exceeded" and no file named. Model files nest a
 * few levels; loaders refuse anything deeper than a bound before parsing.
 */

/** Model JSON files nest under 10 levels (tokenizer.json's normalizer sequences); this leaves room. */
export const MAX_JSON_DEPTH = 64;

/** True when `text` nests objects/arrays deeper than `limit`; one linear pass, strings skipped. */
export function jsonTooDeep(text: string, limit = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Skip the string, escapes included.
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}
