import { DenseKVCache, Pipeline, createPipeline, definePlugin, type ByteSource, type DecodeState, type DecodeStep, type LitheTokenizer, type LlamaConfig, type LlamaModel, type ModelFiles, type PluginContext } from '@lithe/core';
import type { Drafter } from './drafts/drafter.js';
import { ModelDrafter } from './drafts/model-drafter.js';
import { PromptLookupDrafter } from './drafts/prompt-lookup.js';
import { quantizedCopy } from './drafts/quantized-copy.js';
import { SpeculativeStatsRecorder } from './stats.js';
import { verify } from './verify.js';

export type SelfDraft = 'self-int8' | 'self-int4';

export interface SpeculativeOptions {
  /**
   * Where drafts come from:
   * - a `Pipeline`, or a model (HF directory, .gguf path, `ModelFiles`, `ByteSource`) loaded on the
   *   target's backend, sharing the target's vocabulary;
   * - `'self-int8'` / `'self-int4'`: a q8_0 / q4_0 copy of the target, made at load;
   * - `'prompt-lookup'`: n-grams of the prompt and the text so far, no draft model.
   */
  draft: Pipeline | string | ModelFiles | ByteSource | SelfDraft | 'prompt-lookup';
  /** Tokens drafted per step, k (default 4; with `adaptive`, the most). */
  tokens?: number;
  /** Prompt lookup: the longest n-gram matched (default 3). */
  ngram?: number;
  /** Shrink k after a rejection and grow it back (up to `tokens`) after a step that accepts all. */
  adaptive?: boolean;
}

export interface ResolvedSpeculativeOptions {
  draft: SpeculativeOptions['draft'];
  tokens: number;
  ngram: number;
  adaptive: boolean;
}

/** Checks the options, naming the first bad field. */
export function resolveSpeculativeOptions(o: SpeculativeOptions): ResolvedSpeculativeOptions {
  if (!o || o.draft === undefined || o.draft === null || o.draft === '') {
    throw new Error("speculative: `draft` is required: a model directory or .gguf file, a Pipeline, 'self-int8', 'self-int4' or 'prompt-lookup'");
  }
  const tokens = o.tokens ?? 4;
  if (!(Number.isSafeInteger(tokens) && tokens >= 1 && tokens <= 64)) throw new RangeError(`speculative: tokens (draft length k) must be an integer from 1 to 64, got ${o.tokens}`);
  const ngram = o.ngram ?? 3;
  if (!(Number.isSafeInteger(ngram) && ngram >= 1 && ngram <= 32)) throw new RangeError(`speculative: ngram must be an integer from 1 to 32, got ${o.ngram}`);
  return { draft: o.draft, tokens, ngram, adaptive: o.adaptive ?? false };
}

/** A draft must index the same vocabulary as the target, or its tokens mean something else. */
export function checkSameVocabulary(target: LlamaConfig, draft: LlamaConfig, where: string, tokenizers?: { target?: LitheTokenizer; draft: LitheTokenizer }): void {
  const diff: string[] = [];
  if (draft.vocabSize !== target.vocabSize) diff.push(`vocab size ${draft.vocabSize} vs the target's ${target.vocabSize}`);
  if (draft.bosTokenId !== target.bosTokenId) diff.push(`BOS id ${draft.bosTokenId} vs ${target.bosTokenId}`);
  if (draft.eosTokenIds.join() !== target.eosTokenIds.join()) diff.push(`EOS ids [${draft.eosTokenIds}] vs [${target.eosTokenIds}]`);
  // Same sizes can still be different vocabularies (Llama 2's and Mistral's are both 32000): the pieces must match too.
  const t = tokenizers?.target;
  if (diff.length === 0 && t && tokenizers) {
    const d = tokenizers.draft;
    const n = Math.max(t.vocabSize, d.vocabSize);
    const differs = Array.from({ length: n }, (_, id) => id).filter((id) => t.idToToken(id) !== d.idToToken(id));
    if (differs.length > 0) {
      const id = differs[0];
      diff.push(`${differs.length} token${differs.length === 1 ? '' : 's'} differ, first id ${id}: ${JSON.stringify(t.idToToken(id))} in the target's, ${JSON.stringify(d.idToToken(id))} in the draft's`);
    }
  }
  if (diff.length > 0) {
    throw new Error(`speculative: the draft model ${where} has a different vocabulary (${diff.join('; ')}); use a draft trained with the target's tokenizer, 'self-int8', or 'prompt-lookup'`);
  }
}

/**
 * Speculative decoding: each decode step drafts k tokens cheaply, runs the target once over the
 * last token and the k drafts, keeps the drafts the target agrees with (greedy: its argmax; sampling:
 * rejection sampling, so the output distribution is exactly the target's) plus one token of its
 * own, and rolls both KV caches back over the rest.
 *
 * ```ts
 * const pipeline = await createPipeline({ model, plugins: [speculative({ draft: 'self-int8', tokens: 5 })] });
 * ```
 *
 * Acceptance statistics are on each `step` event and the result, under `stats.speculative`.
 */
export const speculative = definePlugin((options: SpeculativeOptions) => {
  const o = resolveSpeculativeOptions(options);
  let drafter: Drafter | null = null;

  const fromPipeline = (p: Pipeline, ctx: PluginContext, where: string, owned: boolean) => {
    checkSameVocabulary(ctx.config, p.config, where, { target: ctx.tokenizer, draft: p.tokenizer });
    return new ModelDrafter('model', p.model, (capacity) => p.createCache(capacity), owned ? () => p.dispose() : undefined);
  };

  return {
    name: 'speculative',
    // Last, so the self draft copies the model as the other plugins left it and the step wraps theirs.
    enforce: 'post' as const,
    async setup(ctx: PluginContext) {
      const d = o.draft;
      if (d === 'prompt-lookup') drafter = new PromptLookupDrafter(o.ngram);
      else if (d instanceof Pipeline) drafter = fromPipeline(d, ctx, '(the given pipeline)', false);
      else if (d !== 'self-int8' && d !== 'self-int4') {
        const where = typeof d === 'string' ? `at ${d}` : `at ${'location' in d ? d.location : 'the given bytes'}`;
        const p = await createPipeline({ model: d, backend: ctx.backend });
        try {
          drafter = fromPipeline(p, ctx, where, true);
        } catch (e) {
          p.dispose();
          throw e;
        }
      }
    },
    async patchModel(model: LlamaModel) {
      if (o.draft === 'self-int8' || o.draft === 'self-int4') {
        const copy = await quantizedCopy(model, o.draft === 'self-int8' ? 'q8_0' : 'q4_0');
        const c = model.config;
        const dense = (capacity: number) => new DenseKVCache({ backend: model.backend, nLayers: c.nLayers, nKVHeads: c.nKVHeads, headDim: c.headDim, capacity });
        drafter = new ModelDrafter(o.draft, copy.model, dense, copy.dispose);
      }
      // The pipeline disposes its model; the draft goes with it.
      const dispose = model.dispose.bind(model);
      model.dispose = () => {
        drafter?.dispose();
        dispose();
      };
    },
    wrapDecode(next: DecodeStep): DecodeStep {
      return speculativeStep(next, () => drafter!, o);
    },
  };
});

/** The decode step: draft, verify in one target forward, roll back, record stats. */
function speculativeStep(next: DecodeStep, drafterOf: () => Drafter, o: ResolvedSpeculativeOptions): DecodeStep {
  const runs = new WeakMap<DecodeState, { k: number; stats: SpeculativeStatsRecorder; residual: Float64Array; p: Float64Array }>();
  return async (state) => {
    const drafter = drafterOf();
    let run = runs.get(state);
    if (!run) {
      const V = state.model.config.vocabSize;
      run = { k: o.tokens, stats: new SpeculativeStatsRecorder(drafter.kind, o.tokens), residual: new Float64Array(V), p: new Float64Array(V) };
      runs.set(state, run);
    }
    const { cache, tokens } = state;
    const length = cache.length; // = tokens.length - 1: the last token is not in the cache yet
    // The step emits up to k + 1 tokens and writes k + 1 cache rows: stay inside both limits (an
    // unbounded cache, a streaming window, takes any number of rows and rolls back inside its window).
    const room = cache.unbounded ? Infinity : cache.capacity - length - 1;
    const k = Math.min(run.k, state.remaining - 1, room);
    const proposal = k > 0 && !state.signal?.aborted ? await drafter.propose(state, k) : { ids: [], q: null };
    if (proposal.ids.length === 0) {
      run.stats.plainStep();
      state.stats.speculative = run.stats.snapshot();
      return next(state);
    }
    const drafted = proposal.ids;
    const V = state.model.config.vocabSize;
    const logits = await state.forward([tokens[tokens.length - 1], ...drafted], 'all');
    const rows: Float32Array[] = [];
    const r = run;
    const verdict = verify({
      drafted,
      q: proposal.q,
      greedy: state.greedy,
      residual: r.residual,
      random: state.random,
      draw: state.draw,
      p: (i) => {
        rows[i] = logits.subarray(i * V, (i + 1) * V);
        return state.distribution(rows[i], [...tokens, ...drafted.slice(0, i)], r.p);
      },
    });
    verdict.tokens.forEach((id, i) => state.chose(rows[i], id));
    const kept = length + 1 + verdict.accepted;
    cache.truncate(kept);
    drafter.rollback(state, kept);

    run.stats.step(drafted.length, verdict.accepted);
    state.stats.speculative = run.stats.snapshot();
    if (o.adaptive) run.k = verdict.accepted === drafted.length ? Math.min(o.tokens, run.k + 1) : Math.max(1, verdict.accepted + 1);
    return verdict.tokens;
  };
}
