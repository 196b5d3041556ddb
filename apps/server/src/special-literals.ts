/**
 * Chat message content is text: a special-token literal typed by a user (`</s>`, `<s>`,
 * `<|eot_id|>`...) must not become a control token when the templated prompt is tokenized. Each
 * literal found in a message is broken up with a zero-width space after its first character, so
 * the model reads the characters and never the control token. Used on the main thread and in
 * the prompt worker, which has a tokenizer of its own.
 */
import type { LitheTokenizer } from '@lithe/core';

const ZWSP = '\u200B';

/** The literal text of each special token that `text` contains. */
function specialLiterals(tokenizer: LitheTokenizer, text: string): Set<string> {
  const found = new Set<string>();
  for (const id of new Set(tokenizer.encode(text, { addSpecialTokens: false }))) {
    // A special token decodes to nothing once special tokens are skipped.
    if (tokenizer.decode([id]) !== '') continue;
    const literal = tokenizer.decode([id], { skipSpecialTokens: false });
    if (literal.length > 0 && text.includes(literal)) found.add(literal);
  }
  return found;
}

/** `content` with every special-token literal broken up so it tokenizes as plain text. */
export function plainText(tokenizer: LitheTokenizer, content: string): string {
  let out = content;
  for (const literal of specialLiterals(tokenizer, content)) {
    out = out.split(literal).join(literal[0] + ZWSP + literal.slice(1));
  }
  return out;
}
