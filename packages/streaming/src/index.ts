export { streaming, parseStreamingFlags } from './streaming.js';
export { StreamingKVCache, StreamingLayer, STREAMING_KIND, resolveStreamingOptions, type StreamingOptions } from './streaming-kv-cache.js';
export { streamingAttention } from './attention.js';
