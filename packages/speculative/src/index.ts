// Public API of @lithe/speculative.
export { speculative, resolveSpeculativeOptions, checkSameVocabulary, type SpeculativeOptions, type ResolvedSpeculativeOptions, type SelfDraft } from './speculative.js';
export { verify, type Verification, type Verdict } from './verify.js';
export { lookupDraft, PromptLookupDrafter } from './drafts/prompt-lookup.js';
export { ModelDrafter } from './drafts/model-drafter.js';
export { quantizedCopy, type SelfDraftFormat } from './drafts/quantized-copy.js';
export type { Drafter, Proposal } from './drafts/drafter.js';
export type { SpeculativeStats } from './stats.js';
