/**
 * Token sampling from logits.
 *
 * Processing order (the same as Hugging Face transformers' `generate`):
 *   1. repetition penalty  - for each distinct previous token: logit > 0 ? logit / p : logit * p
 *   2. temperature == 0    - greedy: argmax, first index wins on ties; nothing below runs
 *   3. temperature         - logits / T
 *   4. top-k               - keep tokens whose logit is >= the k-th largest (ties at the edge kept)
 *   5. top-p (nucleus)     - keep the smallest set of most probable tokens with cumulative
 *                            probability >= top_p (always at least one)
 *   6. min-p               - keep tokens with probability >= min_p * (largest probability)
 *   7. renormalize the kept probabilities and draw one token with the seeded RNG (walking the
 *      kept tokens in id order, so the draw depends on the probabilities only)
 * Probabilities in steps 5 and 6 are the softmax over the tokens kept so far.
 */
import { createRng } from './rng.js';
import type { Rng } from './rng.js';

export interface SamplingOptions {
  /** 0 = greedy; default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off (default). */
  topK?: number;
  /** Nucleus sampling threshold in (0, 1]; 1 = off (default). */
  topP?: number;
  /** Keep tokens with prob >= minP * max prob, in [0, 1]; 0 = off (default). */
  minP?: number;
  /** CTRL-style penalty > 0 on tokens already seen; 1 = off (default). */
  repetitionPenalty?: number;
  /** Integer seed for reproducible draws; random when absent. */
  seed?: number;
}

/** Throws a RangeError naming the first invalid field and its valid range. */
export function validateSamplingOptions(o: SamplingOptions): void {
  const bad = (field: string, range: string, v: unknown) =>
    new RangeError(`${field} must be ${range}, got ${String(v)}`);
  const { temperature, topK, topP, minP, repetitionPenalty, seed } = o;
  if (temperature !== undefined && !(Number.isFinite(temperature) && temperature >= 0)) {
    throw bad('temperature', 'a finite number >= 0 (0 = greedy)', temperature);
  }
  if (topK !== undefined && !(Number.isSafeInteger(topK) && topK >= 0)) {
    throw bad('topK', 'an integer >= 0 (0 = off)', topK);
  }
  if (topP !== undefined && !(topP > 0 && topP <= 1)) {
    throw bad('topP', 'in (0, 1] (1 = off)', topP);
  }
  if (minP !== undefined && !(minP >= 0 && minP <= 1)) {
    throw bad('minP', 'in [0, 1] (0 = off)', minP);
  }
  if (repetitionPenalty !== undefined && !(Number.isFinite(repetitionPenalty) && repetitionPenalty > 0)) {
    throw bad('repetitionPenalty', 'a finite number > 0 (1 = off)', repetitionPenalty);
  }
  if (seed !== undefined && !Number.isSafeInteger(seed)) {
    throw bad('seed', 'a safe integer', seed);
  }
}

// ---------------------------------------------------------------------------------------------
// In-place filter steps. Each works on the candidate list idx[0..n) (token ids) and a value array
// indexed by token id, reorders idx so the kept tokens come first and returns their count.

/** Top-k by value; keeps every token tied with the k-th largest, as transformers does. */
export function selectTopK(values: ArrayLike<number>, idx: Int32Array, n: number, k: number): number {
  if (k <= 0 || k >= n) return n;
  // Quickselect (Hoare partition, descending) so that idx[k-1] holds the k-th largest value.
  let lo = 0;
  let hi = n - 1;
  const target = k - 1;
  while (lo < hi) {
    const pivot = values[idx[(lo + hi) >>> 1]];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (values[idx[i]] > pivot) i++;
      while (values[idx[j]] < pivot) j--;
      if (i <= j) {
        const t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  // idx[0..k) are all >= the threshold now; pull in ties from the rest.
  let threshold = Infinity;
  for (let i = 0; i < k; i++) threshold = Math.min(threshold, values[idx[i]]);
  let m = k;
  for (let i = k; i < n; i++) {
    if (values[idx[i]] >= threshold) {
      const t = idx[m];
      idx[m++] = idx[i];
      idx[i] = t;
    }
  }
  return m;
}

/**
 * Nucleus filter: keeps the smallest set of most probable tokens whose mass is >= p of the total
 * over idx[0..n) (`probs` need not be normalized); on ties the lower token id goes first. Moves
 * the kept tokens to the front, in no particular order.
 *
 * Rather than sorting (slow for a flat 32k-token distribution), this is a quickselect on mass:
 * partition around a pivot; if the tokens above it already hold enough mass, look only among
 * them, else keep them all and continue below. Expected O(n). Sums are taken per partition, so
 * only a cumulative sum within rounding of p itself could differ from a sort-and-scan.
 */
export function selectTopP(probs: ArrayLike<number>, idx: Int32Array, n: number, p: number): number {
  if (p >= 1 || n <= 1) return n;
  let need = 0;
  for (let i = 0; i < n; i++) need += probs[idx[i]];
  need *= p;
  if (!(need > 0)) return n;
  const swap = (i: number, j: number) => {
    const t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  };
  // Invariant: idx[0..lo) are kept; the answer lies in [lo, hi].
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const pivot = probs[idx[(lo + hi) >>> 1]];
    // Three-way partition of [lo, hi): [lo, gt) > pivot, [gt, lt) == pivot, [lt, hi) < pivot.
    let gt = lo;
    let lt = hi;
    let massGt = 0;
    for (let i = lo; i < lt; ) {
      const v = probs[idx[i]];
      if (v > pivot) {
        massGt += v;
        swap(gt++, i++);
      } else if (v < pivot) swap(i, --lt);
      else i++;
    }
    if (massGt >= need) {
      hi = gt; // all that is needed is among the larger ones (gt > lo since massGt > 0)
      continue;
    }
    need -= massGt;
    // Equal probabilities: take them by ascending id until the mass is reached.
    idx.subarray(gt, lt).sort();
    for (let i = gt; i < lt; i++) {
      need -= probs[idx[i]];
      if (need <= 0) return i + 1;
    }
    lo = lt;
  }
  return lo;
}

/** Min-p filter: keeps tokens with prob >= minP * max prob over idx[0..n), order preserved. */
export function selectMinP(probs: ArrayLike<number>, idx: Int32Array, n: number, minP: number): number {
  if (minP <= 0 || n <= 1) return n;
  let max = 0;
  for (let i = 0; i < n; i++) max = Math.max(max, probs[idx[i]]);
  const threshold = minP * max;
  let m = 0;
  for (let i = 0; i < n; i++) {
    const t = idx[i];
    if (probs[t] >= threshold) {
      idx[i] = idx[m];
      idx[m++] = t;
    }
  }
  return m;
}

function keptIds(values: ArrayLike<number>, step: (idx: Int32Array, n: number) => number): number[] {
  const idx = Int32Array.from({ length: values.length }, (_, i) => i);
  const m = step(idx, values.length);
  return Array.from(idx.subarray(0, m)).sort((a, b) => a - b);
}

/** Token ids kept by top-k over `logits` (or probs), ascending. */
export function topKFilter(logits: ArrayLike<number>, k: number): number[] {
  return keptIds(logits, (idx, n) => selectTopK(logits, idx, n, k));
}

/** Token ids kept by top-p over a probability vector, ascending. */
export function topPFilter(probs: ArrayLike<number>, p: number): number[] {
  return keptIds(probs, (idx, n) => selectTopP(probs, idx, n, p));
}

/** Token ids kept by min-p over a probability vector, ascending. */
export function minPFilter(probs: ArrayLike<number>, minP: number): number[] {
  return keptIds(probs, (idx, n) => selectMinP(probs, idx, n, minP));
}

/**
 * Applies the CTRL repetition penalty in place, once per distinct token of `tokens`:
 * logit > 0 ? logit / penalty : logit * penalty.
 */
export function applyRepetitionPenalty(logits: Float32Array, tokens: ArrayLike<number>, penalty: number): void {
  penalizeDistinct(logits, tokens, penalty, new Uint32Array(logits.length), 1);
}

// marks[t] === epoch means token t was already penalized in this pass.
function penalizeDistinct(
  logits: Float32Array,
  tokens: ArrayLike<number>,
  penalty: number,
  marks: Uint32Array,
  epoch: number,
): void {
  const V = logits.length;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!(Number.isInteger(t) && t >= 0 && t < V)) {
      throw new RangeError(`previous token id ${t} is outside the vocabulary [0, ${V})`);
    }
    if (marks[t] === epoch) continue;
    marks[t] = epoch;
    const l = logits[t];
    logits[t] = l > 0 ? l / penalty : l * penalty;
  }
}

/**
 * The model computed NaN logits: overflowing weights or activations (f16 overflow, a corrupt file).
 * Greedy decoding fails with this on every backend rather than pick a token silently.
 */
export function nanLogitsError(): Error {
  return new Error('the model produced NaN logits, so no token can be chosen; the weights may hold NaN/Inf (load with checkTensors: true, or --check-tensors in the CLI, to find them) or an f16 activation overflowed (try --dtype f32)');
}

function hasNaN(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (values[i] !== values[i]) return true;
  return false;
}

/** First index of the largest value (NaN never wins). */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  let bestVal = -Infinity;
  for (let i = 0; i < values.length; i++) {
    if (values[i] > bestVal) {
      bestVal = values[i];
      best = i;
    }
  }
  return best;
}

/**
 * Samples one token id per call. Scratch buffers are sized to the vocabulary once; the caller's
 * logits are copied, never modified.
 */
export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly repetitionPenalty: number;
  private readonly rng: Rng;
  private readonly work: Float32Array;
  private readonly probs: Float64Array;
  private readonly idx: Int32Array;
  // Marks tokens already penalized in this call: seen[t] === epoch. Avoids clearing a set per token.
  private readonly seen: Uint32Array;
  private epoch = 0;

  constructor(
    opts: SamplingOptions,
    readonly vocabSize: number,
  ) {
    validateSamplingOptions(opts);
    if (!(Number.isSafeInteger(vocabSize) && vocabSize > 0)) {
      throw new RangeError(`vocabSize must be a positive integer, got ${vocabSize}`);
    }
    this.temperature = opts.temperature ?? 1;
    this.topK = opts.topK ?? 0;
    this.topP = opts.topP ?? 1;
    this.minP = opts.minP ?? 0;
    this.repetitionPenalty = opts.repetitionPenalty ?? 1;
    this.rng = createRng(opts.seed);
    this.work = new Float32Array(vocabSize);
    this.probs = new Float64Array(vocabSize);
    this.idx = new Int32Array(vocabSize);
    this.seen = new Uint32Array(this.repetitionPenalty === 1 ? 0 : vocabSize);
  }

  sample(logits: Float32Array, previousTokens: ArrayLike<number> = []): number {
    const n = this.candidates(logits, previousTokens);
    if (n < 0) return this.greedyId();
    const { idx, probs } = this;
    // The draw walks the candidates in token-id order, not the filters' partition order: otherwise
    // a rounding-level change of one logit (another backend, a batched kernel) could reorder the
    // candidates and change the token a seed draws.
    if (n < this.vocabSize) idx.subarray(0, n).sort();
    let total = 0;
    for (let i = 0; i < n; i++) total += probs[idx[i]];
    let r = this.rng() * total;
    for (let i = 0; i < n; i++) {
      r -= probs[idx[i]];
      if (r < 0) return idx[i];
    }
    // Rounding left r >= 0: return the last candidate with non-zero probability.
    for (let i = n - 1; i > 0; i--) if (probs[idx[i]] > 0) return idx[i];
    return idx[0];
  }

  /**
   * The distribution `sample` draws from, written into `out` (one entry per token, summing to 1):
   * repetition penalty, temperature, top-k, top-p and min-p applied, zero outside the kept tokens.
   * Greedy (temperature 0) gives all the mass to the argmax. Speculative decoding compares these.
   */
  distribution(logits: Float32Array, previousTokens: ArrayLike<number> = [], out: Float64Array = new Float64Array(this.vocabSize)): Float64Array {
    if (out.length !== this.vocabSize) throw new RangeError(`out has ${out.length} entries, expected vocabSize ${this.vocabSize}`);
    const n = this.candidates(logits, previousTokens);
    out.fill(0);
    if (n < 0) {
      out[this.greedyId()] = 1;
      return out;
    }
    const { idx, probs } = this;
    let total = 0;
    for (let i = 0; i < n; i++) total += probs[idx[i]];
    for (let i = 0; i < n; i++) out[idx[i]] = probs[idx[i]] / total;
    return out;
  }

  /** A uniform number in [0, 1) from this sampler's seeded RNG. */
  random(): number {
    return this.rng();
  }

  /** Draws a token from `probs` (non-negative, need not sum to 1) with this sampler's seeded RNG. */
  draw(probs: ArrayLike<number>): number {
    let total = 0;
    for (let i = 0; i < probs.length; i++) total += probs[i];
    if (!(total > 0)) throw new Error('cannot draw from a distribution with no mass');
    let r = this.rng() * total;
    let last = 0;
    for (let i = 0; i < probs.length; i++) {
      if (probs[i] <= 0) continue;
      last = i;
      r -= probs[i];
      if (r < 0) return i;
    }
    return last; // rounding: the last token with mass
  }

  /** The argmax of the penalized logits in `work`; a NaN row is an error, not token 0. */
  private greedyId(): number {
    const id = argmax(this.work);
    // NaN never compares greater, so a NaN row would quietly give token 0 or a random survivor.
    if (hasNaN(this.work)) throw nanLogitsError();
    return id;
  }

  /**
   * Filters `logits` into the candidate list idx[0..n) with unnormalized probs[], and returns n;
   * -1 for greedy, with the penalized logits left in `work` for the argmax.
   */
  private candidates(logits: Float32Array, previousTokens: ArrayLike<number>): number {
    const V = this.vocabSize;
    if (logits.length !== V) {
      throw new RangeError(`logits has ${logits.length} entries, expected vocabSize ${V}`);
    }
    const work = this.work;
    work.set(logits);
    if (this.repetitionPenalty !== 1) this.penalize(previousTokens);
    if (this.temperature === 0) return -1;

    const invT = 1 / this.temperature;
    const idx = this.idx;
    for (let i = 0; i < V; i++) {
      const l = work[i] * invT;
      work[i] = l === l ? l : -Infinity; // NaN never gets picked
      idx[i] = i;
    }
    let n = selectTopK(work, idx, V, this.topK);

    // Softmax over the kept candidates; probs is indexed by token id.
    const probs = this.probs;
    let max = -Infinity;
    for (let i = 0; i < n; i++) max = Math.max(max, work[idx[i]]);
    if (max === -Infinity) throw new Error('cannot sample: every logit is -Infinity or NaN');
    for (let i = 0; i < n; i++) {
      const t = idx[i];
      // +Infinity - +Infinity is NaN: those tokens share all the mass.
      const e = Math.exp(work[t] - max);
      probs[t] = e === e ? e : 1;
    }
    n = selectTopP(probs, idx, n, this.topP);
    return selectMinP(probs, idx, n, this.minP);
  }

  private penalize(tokens: ArrayLike<number>): void {
    // A new epoch instead of clearing the marks keeps this O(tokens), not O(vocab).
    if (++this.epoch === 0x100000000) {
      this.seen.fill(0);
      this.epoch = 1;
    }
    penalizeDistinct(this.work, tokens, this.repetitionPenalty, this.seen, this.epoch);
  }
}
