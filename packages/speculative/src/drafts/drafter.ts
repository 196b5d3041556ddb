import type { DecodeState } from '@lithe/core';

/** Tokens proposed after the current context, with the distributions they were drawn from. */
export interface Proposal {
  ids: number[];
  /** q per id (the draft model's distribution), or null for deterministic proposals. */
  q: Float64Array[] | null;
}

/** Where drafted tokens come from. Per-generation state is keyed by the decode state. */
export interface Drafter {
  /** What the stats call it: 'self-int8', 'model', 'prompt-lookup'. */
  readonly kind: string;
  /** Up to `k` tokens after `state.tokens` (fewer, even none, when it has nothing to offer). */
  propose(state: DecodeState, k: number): Promise<Proposal>;
  /** The target kept `length` tokens in its cache: drop whatever the draft holds beyond that. */
  rollback(state: DecodeState, length: number): void;
  dispose(): void;
}
