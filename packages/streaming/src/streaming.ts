import { definePlugin } from '@lithe/core';
import { streamingAttention } from './attention.js';
import { resolveStreamingOptions, STREAMING_KIND, StreamingKVCache, type StreamingOptions } from './streaming-kv-cache.js';

/**
 * The StreamingLLM plugin: a KV cache of `sinks + window` slots that keeps the first `sinks` tokens
 * and the last `window`, so generation and scoring go on past the model's context in constant memory.
 *
 * ```ts
 * const pipeline = await createPipeline({ model, plugins: [streaming({ sinks: 4, window: 1020 })] });
 * ```
 *
 * It wraps the cache the other plugins provide (`enforce: 'post'`, and `composes: ['kv-quant']`: with
 * kvQuant() the ring is stored in int8 or int4), and reads it with that cache's own attention kernel.
 */
export const streaming = definePlugin((options: StreamingOptions) => {
  const resolved = resolveStreamingOptions(options);
  return {
    name: 'streaming',
    enforce: 'post',
    composes: ['kv-quant'],
    createKVCache: (spec, ctx, next) => new StreamingKVCache(next({ ...spec, capacity: resolved.sinks + resolved.window + resolved.rollback }), ctx, resolved),
    attention: { kind: STREAMING_KIND, kernels: { cpu: streamingAttention, wasm: streamingAttention, webgpu: streamingAttention } },
  };
});

/**
 * Reads the CLI's `--sinks` / `--window` values: null when neither is given (no streaming), else the
 * plugin options; `--sinks` alone is refused because the window has no sensible default.
 */
export function parseStreamingFlags(flags: { sinks?: number; window?: number }): Required<StreamingOptions> | null {
  if (flags.sinks === undefined && flags.window === undefined) return null;
  if (flags.window === undefined) throw new Error('--sinks needs --window <n> too: the number of recent tokens kept besides the sinks');
  return resolveStreamingOptions({ sinks: flags.sinks, window: flags.window });
}
