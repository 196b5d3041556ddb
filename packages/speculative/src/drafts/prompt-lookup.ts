import type { DecodeState } from '@lithe/core';
import type { Drafter, Proposal } from './drafter.js';

/**
 * Prompt lookup decoding: the last n tokens (n from `maxNgram` down to 1) are searched for earlier
 * in the prompt and the text so far; the tokens that followed an earlier occurrence are the draft.
 * The latest occurrence with k tokens after it wins, else the one with the most (in a loop the
 * latest match sits just before the end and would draft only a token or two). No draft model; pays
 * off when the output repeats its input (summaries, code edits) or itself.
 */
export function lookupDraft(tokens: readonly number[], k: number, maxNgram: number): number[] {
  const len = tokens.length;
  for (let n = Math.min(maxNgram, len - 1); n >= 1; n--) {
    let best = -1;
    for (let s = len - n - 1; s >= 0; s--) {
      let match = true;
      for (let j = 0; j < n; j++) {
        if (tokens[s + j] !== tokens[len - n + j]) {
          match = false;
          break;
        }
      }
      if (!match) continue;
      if (best < 0 || len - (s + n) > len - (best + n)) best = s;
      if (len - (s + n) >= k) break;
    }
    if (best >= 0) return tokens.slice(best + n, Math.min(best + n + k, len));
  }
  return [];
}

export class PromptLookupDrafter implements Drafter {
  readonly kind = 'prompt-lookup';

  constructor(private readonly maxNgram: number) {}

  async propose(state: DecodeState, k: number): Promise<Proposal> {
    return { ids: lookupDraft(state.tokens, k, this.maxNgram), q: null };
  }

  rollback(): void {}

  dispose(): void {}
}
