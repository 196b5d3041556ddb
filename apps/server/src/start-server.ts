/**
 * startServer: loads a model directory and serves it. It listens first and loads after, so
 * /health answers 503 while the weights load. `lithe serve` calls this with its parsed flags.
 */
import { basename, resolve } from 'node:path';
import { createPipeline, remoteModelName, type LithePlugin, type PipelineOptions } from '@lithe/core';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import type { CorsOrigins } from './cors.js';
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
  /** Origins that may call the server from a browser: '*' or a list (default: none). */
  cors?: CorsOrigins;
  /** Time for a request's headers and body to arrive (default 30 s); then a 408. */
  requestTimeoutMs?: number;
  /** Time a stream waits for a client that does not read (default 30 s); then it is cut and its slot freed. */
  writeTimeoutMs?: number;
  /** Time the chat template may take to render one prompt (default 2000 ms); then a 500. */
  templateTimeoutMs?: number;
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
  /** Bytes of KV cache the server may hold (createServer's `kvBudget`; default from the machine's memory). */
  kvBudget?: number;
  /** Reuse the KV of prompt prefixes (default true). */
  prefixCache?: boolean;
  /** Technique plugins (e.g. from --kv-quant), added to the pipeline with the server's own. */
  plugins?: LithePlugin[];
  /** Chat template text or a built-in name, instead of the model's (createPipeline's `chatTemplate`). */
  chatTemplate?: string;
  /** Scan the weights for NaN/Inf at load (createPipeline's `checkTensors`). */
  checkTensors?: boolean;
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
    modelId: options.modelId ?? remoteModelName(options.model) ?? basename(resolve(options.model)),
    apiKey: options.apiKey,
    model: options.model,
    host: options.host ?? '127.0.0.1',
    cors: options.cors,
    requestTimeoutMs: options.requestTimeoutMs,
    writeTimeoutMs: options.writeTimeoutMs,
    templateTimeoutMs: options.templateTimeoutMs,
    maxQueue: options.maxQueue,
    parallel: options.parallel,
    kvBudget: options.kvBudget,
    prefixCache: options.prefixCache,
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
        chatTemplate: options.chatTemplate,
        checkTensors: options.checkTensors,
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
