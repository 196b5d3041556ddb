import { createPipeline, type BackendChoice, type HubOptions, type ModelInput } from '@lithe/core';

/** What the page, the worker and Node each run: greedy tokens from one prompt, on one backend. */
export interface GreedyRequest {
  model: ModelInput;
  backend: BackendChoice;
  threads?: number;
  download?: HubOptions;
  prompt: string;
  maxTokens: number;
}

export interface GreedyResult {
  ids: number[];
  text: string;
  backend: string;
  crossOriginIsolated: boolean | null;
}

export async function greedy(req: GreedyRequest): Promise<GreedyResult> {
  // An f32 cache: the comparison is exact, and f16 rounding could flip a near tie on one side only.
  const pipeline = await createPipeline({ model: req.model, backend: req.backend, threads: req.threads, download: req.download, kvDtype: 'f32', cacheSize: 128 });
  try {
    const r = await pipeline.generate(req.prompt, { maxTokens: req.maxTokens, temperature: 0, stopOnEos: false }).result;
    return { ids: r.tokenIds, text: r.text, backend: pipeline.backendDescription, crossOriginIsolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated ?? null };
  } finally {
    pipeline.dispose();
  }
}
