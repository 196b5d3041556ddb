/**
 * createServer: a Fastify instance with the OpenAI-compatible routes, the API key check, the
 * JSON body parser and the error handler that turns every failure into OpenAI's error shape.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Pipeline } from '@lithe/core';
import { ServerMetrics } from './metrics.js';
import { OpenAIError, bodyTooLarge, internalError, invalidRequest, notFound, shuttingDown, unauthorized } from './openai-errors.js';
import { Scheduler } from './scheduler.js';
import type { ServerState } from './state.js';
import { chatCompletionsRoute } from './routes/chat-completions.js';
import { completionsRoute } from './routes/completions.js';
import { healthRoute } from './routes/health.js';
import { metricsRoute } from './routes/metrics.js';
import { modelsRoute } from './routes/models.js';

export interface CreateServerOptions {
  /** A loaded pipeline; or give `loadPipeline` and the server answers 503 until it resolves. */
  pipeline?: Pipeline;
  loadPipeline?: () => Promise<Pipeline>;
  /** The model id clients send as `model` and /v1/models lists. */
  modelId: string;
  /** When set, /v1/* requests need `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Requests that may wait for a generation slot; more get a 503 (default 64). */
  maxQueue?: number;
  /** Generations running at once (default 1: CPU inference is compute-bound). */
  parallel?: number;
  /** Largest request body in bytes; larger ones get a 413 (default 4 MiB). */
  maxBodyBytes?: number;
  /** Fastify's logger option: false (default), true, or pino options. */
  logger?: FastifyServerOptions['logger'];
}

/** What `createServer` adds to the Fastify instance, as `app.lithe`. */
export interface LitheServerHandle {
  readonly state: ServerState;
  /** Resolves with the pipeline once loaded; rejects when loading fails. */
  readonly ready: Promise<Pipeline>;
  /**
   * Stops accepting requests, lets those running or queued finish for up to `timeoutMs`, aborts
   * what is still running after that, and closes the server.
   */
  drain(timeoutMs?: number): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    lithe: LitheServerHandle;
  }
}

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_QUEUE = 64;

const utf8 = new TextDecoder('utf-8', { fatal: true });

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Fastify's own errors carry messages that can quote headers; these say the same without them. */
function fastifyErrorToOpenAI(err: FastifyError, maxBodyBytes: number): OpenAIError {
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return bodyTooLarge(maxBodyBytes);
  const status = err.statusCode ?? 500;
  if (status === 415) return new OpenAIError(415, 'Unsupported content type: send application/json.', 'invalid_request_error');
  if (status >= 400 && status < 500) return new OpenAIError(status, 'The request is malformed.', 'invalid_request_error', null, err.code ?? null);
  return internalError();
}

export function createServer(options: CreateServerOptions): FastifyInstance {
  if (!options.pipeline && !options.loadPipeline) throw new Error('createServer needs a pipeline or loadPipeline');
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const metrics = new ServerMetrics(options.modelId);
  const state: ServerState = {
    modelId: options.modelId,
    created: Math.floor(Date.now() / 1000),
    pipeline: options.pipeline ?? null,
    loadError: null,
    metrics,
    scheduler: new Scheduler({
      parallel: options.parallel ?? 1,
      maxQueue: options.maxQueue ?? DEFAULT_MAX_QUEUE,
      onChange: (running, waiting) => ((metrics.running = running), (metrics.waiting = waiting)),
    }),
    controllers: new Set(),
  };

  // return503OnClosing is off so that requests during a drain get the OpenAI-shaped 503 below.
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: maxBodyBytes, return503OnClosing: false });
  let closing = false;

  // Every body is read as bytes and must be UTF-8 JSON, whatever its content type (curl -d
  // sends form encoding by default).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body: Buffer, done) => {
    if (body.length === 0) return done(invalidRequest('The request body is empty: send a JSON object.'), undefined);
    let text: string;
    try {
      text = utf8.decode(body);
    } catch {
      return done(invalidRequest('The request body is not valid UTF-8.'), undefined);
    }
    try {
      done(null, JSON.parse(text));
    } catch {
      done(invalidRequest('The request body is not valid JSON.'), undefined);
    }
  });

  const keyDigest = options.apiKey !== undefined ? digest(`Bearer ${options.apiKey}`) : null;
  app.addHook('onRequest', async (request) => {
    if (closing) throw shuttingDown();
    if (!keyDigest || !request.url.startsWith('/v1/')) return;
    const given = request.headers.authorization;
    if (typeof given !== 'string' || !timingSafeEqual(digest(given), keyDigest)) throw unauthorized();
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const e = err instanceof OpenAIError ? err : fastifyErrorToOpenAI(err, maxBodyBytes);
    if (e.status >= 500 && !(err instanceof OpenAIError)) request.log.error({ err }, 'request failed');
    metrics.requestRefused(e.status);
    return reply.code(e.status).type('application/json; charset=utf-8').send(e.toJSON());
  });
  app.setNotFoundHandler((_request, reply) => {
    const e = notFound();
    metrics.requestRefused(404);
    return reply.code(404).send(e.toJSON());
  });

  healthRoute(app, state);
  metricsRoute(app, state);
  modelsRoute(app, state);
  chatCompletionsRoute(app, state);
  completionsRoute(app, state);

  const ready: Promise<Pipeline> = options.pipeline
    ? Promise.resolve(options.pipeline)
    : options.loadPipeline!().then(
        (p) => (state.pipeline = p),
        (err: unknown) => {
          state.loadError = err instanceof Error ? err : new Error(String(err));
          throw err;
        },
      );
  ready.catch(() => {}); // a failed load is reported by /health and by whoever awaits `ready`
  // A pipeline the server loaded is the server's to free, with its backend's threads.
  if (!options.pipeline) app.addHook('onClose', async () => void (await ready.catch(() => null))?.dispose());

  const drain = async (timeoutMs = 30_000): Promise<void> => {
    closing = true;
    state.scheduler.close();
    const closed = app.close();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      state.scheduler.idle().then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      state.scheduler.rejectWaiting(shuttingDown());
      for (const c of state.controllers) c.abort();
      await state.scheduler.idle();
    }
    // Responses are complete: connections still open are idle or never sent a request.
    const grace = setTimeout(() => app.server.closeAllConnections(), 200);
    await closed;
    clearTimeout(grace);
  };

  app.decorate('lithe', { state, ready, drain } satisfies LitheServerHandle);
  return app;
}
