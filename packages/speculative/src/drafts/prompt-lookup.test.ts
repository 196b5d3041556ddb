import { freshRng } from '@lithe/core/testing';
import { describe, expect, it } from 'vitest';
import { lookupDraft } from './prompt-lookup.js';

/**
 * The rule written plainly: for n from max down to 1, the earlier matches of the last n tokens; the
 * latest with k tokens after it, else the one with the longest continuation.
 */
function reference(tokens: number[], k: number, maxNgram: number): number[] {
  for (let n = Math.min(maxNgram, tokens.length - 1); n >= 1; n--) {
    const tail = tokens.slice(-n).join();
    const starts = [...Array(tokens.length - n).keys()].filter((s) => tokens.slice(s, s + n).join() === tail).reverse();
    if (starts.length === 0) continue;
    const full = starts.find((s) => tokens.length - s - n >= k);
    return tokens.slice((full ?? starts.at(-1)!) + n).slice(0, k);
  }
  return [];
}

describe('prompt lookup drafting', () => {
  it('continues the latest earlier occurrence of the longest matching n-gram', () => {
    //            0  1  2  3  4  5  6  7  8  9
    const t = [5, 6, 7, 8, 9, 1, 6, 7, 2, 6, 7];
    expect(lookupDraft(t, 3, 2)).toEqual([2, 6, 7]); // "6 7" last seen at 6..7, followed by 2 6 7
    expect(lookupDraft(t, 3, 1)).toEqual([2, 6, 7]);
    expect(lookupDraft([5, 6, 7, 8, 6, 7], 2, 3)).toEqual([8, 6]);
    expect(lookupDraft([1, 2, 3, 4], 4, 3)).toEqual([]); // nothing repeats
    expect(lookupDraft([3], 4, 3)).toEqual([]);
    expect(lookupDraft([4, 4, 4], 5, 3)).toEqual([4]); // overlapping matches, continuation cut at the end
    // A loop: the latest match of "7 8" is right before the end; an earlier one drafts all k.
    expect(lookupDraft([1, 7, 8, 7, 8, 7, 8], 4, 2)).toEqual([7, 8, 7, 8]);
    expect(lookupDraft([1, 7, 8, 7, 8, 7, 8], 2, 2)).toEqual([7, 8]);
  });

  const rng = freshRng();
  it(`agrees with the plain rule on random sequences (seed ${rng.seed})`, () => {
    for (let trial = 0; trial < 300; trial++) {
      const len = 1 + Math.floor(rng.uniform() * 40);
      const vocab = 2 + Math.floor(rng.uniform() * 6);
      const t = Array.from({ length: len }, () => Math.floor(rng.uniform() * vocab));
      const k = 1 + Math.floor(rng.uniform() * 6);
      const n = 1 + Math.floor(rng.uniform() * 4);
      expect(lookupDraft(t, k, n)).toEqual(reference(t, k, n));
    }
  });
});
