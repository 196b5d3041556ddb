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
  /** Of `promptTokens`, those whose keys and values came from a reused prefix (prefix caching) instead of the prefill. */
  cachedPromptTokens: number;
  completionTokens: number;
  finishReason: FinishReason;
  timings: GenerationTimings;
  /** Highest total bytes the backend held during this generation. */
  peakMemoryBytes: number;
  /** What decode steps measured, by plugin name (speculative decoding's acceptance); absent when none did. */
  stats?: Record<string, unknown>;
}

/** What one batched step ran: the sequences in it and their new tokens (rows). */
export interface BatchStepInfo {
  sequences: number;
  rows: number;
  /** Of `sequences`, those that ran a prefill chunk that is not their prompt's last. */
  prefillChunks: number;
  /** The step's model time: the batched forward and reading its logits back. */
  ms: number;
  /**
   * How long the model sat idle before this step while generations were running: since the previous
   * step ended, or since the first of them joined. The per-step overhead outside the model: sampling,
   * detokenizing and streaming between steps, and the scheduler's turns waiting for generations.
   */
  gapMs: number;
}

/** eventemitter3 events of a pipeline, for observers (progress, metrics, logs). */
export interface PipelineEvents {
  prefill: { promptTokens: number; ms: number };
  token: TokenEvent;
  /** One decode step; `stats` as on the result, so far (when a step recorded any). */
  step: { tokens: number; ms: number; stats?: Record<string, unknown> };
  memory: MemorySnapshot;
  /** One batched model call over the generations running together (batch size per step). */
  batch: BatchStepInfo;
  done: GenerationResult;
}
