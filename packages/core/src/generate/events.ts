import type { MemorySnapshot } from '../backend/memory.js';
import type { TokenLogprob } from './logprobs.js';

export type FinishReason = 'stop' | 'length' | 'abort';

export interface TokenEvent {
  /** Position in the completion, from 0. */
  index: number;
  /** The token, or null for the last event when it only releases text held back at the end. */
  id: number | null;
  /** Text this token completes; '' while a multi-byte character or a possible stop string is pending. */
  text: string;
  /** With the `logprobs` option: the token's log-probability (after logits processors, before temperature). */
  logprob?: number;
  /** With `logprobs: n`: the n most likely tokens at this step, most likely first. */
  topLogprobs?: TokenLogprob[];
}

export interface GenerationTimings {
  /** Time to first token: prompt in, first generated token out. */
  ttftMs: number;
  prefillMs: number;
  decodeMs: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

export interface GenerationResult {
  text: string;
  tokenIds: number[];
  promptTokens: number;
  completionTokens: number;
  finishReason: FinishReason;
  timings: GenerationTimings;
  /** Highest total bytes the backend held during this generation. */
  peakMemoryBytes: number;
}

/** eventemitter3 events of a pipeline, for observers (progress, metrics, logs). */
export interface PipelineEvents {
  prefill: { promptTokens: number; ms: number };
  token: TokenEvent;
  step: { tokens: number; ms: number };
  memory: MemorySnapshot;
  done: GenerationResult;
}
