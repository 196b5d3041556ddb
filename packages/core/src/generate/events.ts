import type { MemorySnapshot } from '../backend/memory.js';

export type FinishReason = 'stop' | 'length' | 'abort';

export interface TokenEvent {
  /** Position in the completion, from 0. */
  index: number;
  /** The token, or null for the last event when it only releases text held back at the end. */
  id: number | null;
  /** Text this token completes; '' while a multi-byte character or a possible stop string is pending. */
  text: string;
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
