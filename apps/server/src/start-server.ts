/**
 * startServer: loads a model directory and serves it. It listens first and loads after, so
 * /health answers 503 while the weights load. `lithe serve` calls this with its parsed flags.
 */
import { basename, resolve } from 'node:path';
import { createPipeline, type LithePlugin, type PipelineOptions } from '@lithe/core';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import { createServer } from './server.js';

export interface StartServerOptions {
  /** HF model directory (config.json, tokenizer.json, tokenizer_config.json, *.safetensors). */
  model: string;
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 8080; 0 picks a free one). */
  port?: number;
  /** Id clients send as `model` (default: the directory's name). */
  modelId?: string;
  /** When set, /v1/* needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Requests that may wait for a slot (default 64); more get a 503. */
  maxQueue?: number;
  /** Generations running at once (default 1). */
  parallel?: number;
  /** Largest request body in bytes (default 4 MiB). */
  maxBodyBytes?: number;
  /** A backend createPipeline knows or a backend instance (default 'auto': WebGPU on a GPU, else wasm). */
  backend?: PipelineOptions['backend'];
  /** Threads of the wasm backend (default: the physical cores). */
  threads?: number;
  /** Storage dtype of the weight matrices (default 'auto': the file's). */
  dtype?: PipelineOptions['dtype'];
  /** Tokens of KV cache per generation: the context limit of every request. */
  cacheSize?: number;
  /** Technique plugins (e.g. from --kv-quant), added to the pipeline with the server's own. */
  plugins?: LithePlugin[];
  /** Fastify's logger option (default false). */
  logger?: FastifyServerOptions['logger'];
  /** Weight loading progress. */
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
}

export interface RunningServer {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  /** Resolves once the model is loaded and requests are served; rejects if loading fails. */
  ready: Promise<void>;
  /** Graceful stop: refuse new requests, finish those in flight (up to `timeoutMs`), close. */
  close(timeoutMs?: number): Promise<void>;
}

export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const app = createServer({
    modelId: options.modelId ?? basename(resolve(options.model)),
    apiKey: options.apiKey,
    maxQueue: options.maxQueue,
    parallel: options.parallel,
    maxBodyBytes: options.maxBodyBytes,
    logger: options.logger,
    loadPipeline: () =>
      createPipeline({
        model: options.model,
        backend: options.backend ?? 'auto',
        threads: options.threads,
        dtype: options.dtype,
        cacheSize: options.cacheSize,
        plugins: options.plugins,
        onProgress: options.onProgress,
      }),
  });
  const url = await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 8080 });
  return {
    app,
    url,
    ready: app.lithe.ready.then(() => undefined),
    close: (timeoutMs) => app.lithe.drain(timeoutMs),
  };
}
