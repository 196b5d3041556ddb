/**
 * OpenAI's presence and frequency penalties and logit_bias, as logits processors of one request
 * (core runs them after the pipeline's own, before sampling). Log-probabilities come from core.
 */
import type { GenerateOptions } from '@lithe/core';
import type { SamplingRequest } from './request-schema.js';

type Processor = NonNullable<GenerateOptions['logitsProcessors']>[number];

export function requestLogitsProcessors(request: SamplingRequest, promptLength: number): Processor[] {
  const out: Processor[] = [];
  const { presencePenalty, frequencyPenalty, logitBias } = request;
  if (presencePenalty !== 0 || frequencyPenalty !== 0) {
    out.push((logits, tokens) => {
      // Only generated tokens count, as in OpenAI's definition.
      const counts = new Map<number, number>();
      for (let i = promptLength; i < tokens.length; i++) counts.set(tokens[i], (counts.get(tokens[i]) ?? 0) + 1);
      for (const [id, n] of counts) logits[id] -= presencePenalty + n * frequencyPenalty;
    });
  }
  if (logitBias) out.push((logits) => void logitBias.forEach((b, id) => (logits[id] += b)));
  return out;
}

export interface TokenLogprob {
  id: number;
  logprob: number;
  top: { id: number; logprob: number }[];
}
