/**
 * createServer: a Fastify instance with the OpenAI-compatible routes, the API key check, the
 * JSON body parser and the error handler that turns every failure into OpenAI's error shape.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify';
import type { BatchStepInfo, Pipeline } from '@lithe/core';
import { answerOnSocket, clientErrorToOpenAI } from './client-errors.js';
import { allowedOrigin, type CorsOrigins } from './cors.js';
import { isLoopbackHostHeader, isLoopbackName } from './host-check.js';
import { ServerMetrics } from './metrics.js';
import {
  OpenAIError,
  bodyTooLarge,
  generationCut,
  hostNotAllowed,
  internalError,
  invalidRequest,
  notFound,
  originNotAllowed,
  shuttingDown,
  unauthorized,
  unsupportedMediaType,
} from './openai-errors.js';
import { maxPromptChars } from './prompt.js';
import { Scheduler } from './scheduler.js';
import { defaultKvBudget, kvSessions } from './kv-budget.js';
import type { ServerState } from './state.js';
import { DEFAULT_TEMPLATE_TIMEOUT_MS, PromptWorker } from './prompt-worker.js';
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
  /** When set, every route but /health, /metrics and CORS preflights needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /**
   * The interface the server will listen on (default 127.0.0.1). With no `apiKey` and a loopback
   * interface, requests whose Host header is not loopback get a 403 (DNS rebinding).
   */
  host?: string;
  /** Origins that may call the server from a browser: '*' or a list (default: none). */
  cors?: CorsOrigins;
  /** Requests that may wait for a generation slot; more get a 503 (default 64). */
  maxQueue?: number;
  /**
   * Generations running at once (default 1). They run as one batched model step (continuous
   * batching), so on a memory-bound machine more run in nearly the time of one.
   */
  parallel?: number;
  /**
   * Bytes of KV cache the server may hold (default: a quarter of the machine's memory, at most half
   * of what is free once the model is loaded). Each running generation holds one cache of the
   * pipeline's cacheSize (its bytes as the cache reports them: kv-quant and lckv caches are
   * smaller, so more fit); running generations are capped at what fits, and idle caches are kept
   * for prefix caching within what is left.
   */
  kvBudget?: number;
  /** Reuse the KV of prompt prefixes an idle cache holds (default true). */
  prefixCache?: boolean;
  /** Largest request body in bytes; larger ones get a 413 (default 4 MiB). */
  maxBodyBytes?: number;
  /** Time for a request's headers and body to arrive in full; later, a 408 (default 30 000 ms). */
  requestTimeoutMs?: number;
  /**
   * Time a stream may wait for a client that does not read; then the connection is closed, the
   * generation aborted and its slot freed (default 30 000 ms).
   */
  writeTimeoutMs?: number;
  /** Time the chat template may take to render one prompt; then a 500 (default 2000 ms). */
  templateTimeoutMs?: number;
  /**
   * The files the pipeline was loaded from (a model directory or a .gguf file): the prompt
   * worker builds its own copy of the tokenizer from them, so long prompts are tokenized off the
   * event loop. Without it only chat templates render there.
   */
  model?: string;
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
   * what is still running after that (its stream ends with an error event), closes every
   * connection and the server.
   */
  drain(timeoutMs?: number): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    lithe: LitheServerHandle;
  }
  interface FastifyContextConfig {
    /** Answered without the API key (health, metrics, CORS preflight). */
    public?: boolean;
  }
}

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_QUEUE = 64;
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
export const DEFAULT_WRITE_TIMEOUT_MS = 30_000;
/** After a drain aborted what was running: how long the streams get to send their last event. */
const CUT_GRACE_MS = 500;

const utf8 = new TextDecoder('utf-8', { fatal: true });

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Fastify's own errors carry messages that can quote headers; these say the same without them. */
function fastifyErrorToOpenAI(err: FastifyError, maxBodyBytes: number): OpenAIError {
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return bodyTooLarge(maxBodyBytes);
  const status = err.statusCode ?? 500;
  if (status === 415) return unsupportedMediaType();
  if (status >= 400 && status < 500) return new OpenAIError(status, 'The request is malformed.', 'invalid_request_error', null, err.code ?? null);
  return internalError();
}

export function createServer(options: CreateServerOptions): FastifyInstance {
  if (!options.pipeline && !options.loadPipeline) throw new Error('createServer needs a pipeline or loadPipeline');
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const metrics = new ServerMetrics(options.modelId);
  const parallel = options.parallel ?? 1;
  const maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
  const state: ServerState = {
    modelId: options.modelId,
    created: Math.floor(Date.now() / 1000),
    pipeline: options.pipeline ?? null,
    loadError: null,
    metrics,
    scheduler: new Scheduler({
      parallel,
      maxQueue,
      onChange: (running, waiting) => ((metrics.running = running), (metrics.waiting = waiting)),
    }),
    controllers: new Set(),
    prompts: new PromptWorker({ timeoutMs: options.templateTimeoutMs ?? DEFAULT_TEMPLATE_TIMEOUT_MS, maxPending: parallel + maxQueue }),
    writeTimeoutMs: options.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS,
  };

  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: maxBodyBytes,
    // Off so that requests during a drain get the OpenAI-shaped 503 below.
    return503OnClosing: false,
    // Fastify's default of 0 turns Node's request timeout off; headers count against the same
    // budget, and Node looks for expired requests once a second instead of every 30 s.
    requestTimeout: requestTimeoutMs,
    http: { headersTimeout: requestTimeoutMs, connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(requestTimeoutMs / 4))) },
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const e = clientErrorToOpenAI(err.code, requestTimeoutMs / 1000);
      if (answerOnSocket(socket, e)) metrics.requestRefused(e.status);
    },
    // A path that cannot be decoded (`/v1/%zz`) gets the same shape as every other error.
    frameworkErrors: (_err, _request, rawReply) => {
      metrics.requestRefused(400);
      const reply = rawReply as unknown as FastifyReply;
      void reply.code(400).type('application/json; charset=utf-8').send(invalidRequest('The request path is not valid.', null, 'bad_url').toJSON());
    },
  });
  let closing = false;

  // Bodies must be UTF-8 JSON sent as such: a cross-site form post (text/plain,
  // application/x-www-form-urlencoded, multipart) needs no CORS preflight, so it must not run.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body: Buffer, done) => {
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
  const checkHost = keyDigest === null && isLoopbackName(options.host ?? '127.0.0.1');
  app.addHook('onRequest', async (request, reply) => {
    if (closing) throw shuttingDown();
    if (checkHost) {
      const host = request.headers.host;
      if (host !== undefined && !isLoopbackHostHeader(host)) throw hostNotAllowed();
    }
    const origin = request.headers.origin;
    if (typeof origin === 'string') {
      const allowed = allowedOrigin(options.cors, origin);
      // Set on the raw response, so that streams (which bypass Fastify's reply) carry them too.
      if (allowed !== null) reply.raw.setHeader('access-control-allow-origin', allowed);
      if (allowed !== '*' && options.cors) reply.raw.setHeader('vary', 'Origin');
    }
    // Keyed on the route the router matched (what runs), never on the URL's spelling: every
    // route needs the key unless it is marked public, and so does the not-found handler.
    if (!keyDigest || request.routeOptions.config.public === true) return;
    const given = request.headers.authorization;
    // Equal-length digests: the comparison takes the same time whatever the key sent.
    if (typeof given !== 'string' || !timingSafeEqual(digest(given), keyDigest)) throw unauthorized();
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const e = err instanceof OpenAIError ? err : fastifyErrorToOpenAI(err, maxBodyBytes);
    if (e.status >= 500 && !(err instanceof OpenAIError)) request.log.error({ err }, 'request failed');
    metrics.requestRefused(e.status);
    if (e.retryAfter !== null) void reply.header('retry-after', String(e.retryAfter));
    return reply.code(e.status).type('application/json; charset=utf-8').send(e.toJSON());
  });
  app.setNotFoundHandler((_request, reply) => {
    const e = notFound();
    metrics.requestRefused(404);
    return reply.code(404).send(e.toJSON());
  });

  // CORS preflight: a browser asks before a cross-origin JSON POST or one with Authorization.
  app.options('/*', { config: { public: true } }, async (request, reply) => {
    const origin = request.headers.origin;
    if (typeof origin !== 'string' || allowedOrigin(options.cors, origin) === null) throw originNotAllowed();
    const asked = request.headers['access-control-request-headers'];
    return reply
      .code(204)
      .header('access-control-allow-methods', 'GET, POST, OPTIONS')
      .header('access-control-allow-headers', typeof asked === 'string' && asked.length > 0 ? asked : 'authorization, content-type')
      .header('access-control-max-age', '600')
      .send();
  });

  healthRoute(app, state);
  metricsRoute(app, state);
  modelsRoute(app, state);
  chatCompletionsRoute(app, state);
  completionsRoute(app, state);

  // The KV budget and prefix cache are set before any request runs on the pipeline.
  const loaded: Promise<Pipeline> = options.pipeline
    ? Promise.resolve(options.pipeline).then((p) => (configureKv(p), p))
    : options.loadPipeline!().then((p) => {
        try {
          configureKv(p);
        } catch (err) {
          p.dispose();
          throw err;
        }
        return (state.pipeline = p);
      });
  const ready = loaded.catch((err: unknown) => {
    state.pipeline = null;
    state.loadError = err instanceof Error ? err : new Error(String(err));
    throw err;
  });
  function configureKv(p: Pipeline): void {
    const budget = options.kvBudget ?? defaultKvBudget();
    const sessions = kvSessions(budget, p.cacheBytes, p.cacheSize);
    state.scheduler.limitTo(sessions);
    const prefix = options.prefixCache ?? true;
    p.caches.prefixCaching = prefix;
    // Running generations take a cache each; the rest of the budget keeps idle ones for their prefixes.
    p.caches.maxCaches = prefix ? sessions : state.scheduler.capacity;
    p.caches.trim();
    metrics.kv = () => ({ inUse: p.caches.bytesInUse, held: p.caches.bytes, budget, sessions });
    const onBatch = ({ sequences, rows, ms, gapMs }: BatchStepInfo) => {
      metrics.batchSize.observe(sequences);
      metrics.stepTokens.observe(rows);
      metrics.stepTime.observe(ms / 1000);
      metrics.stepGap.observe(gapMs / 1000);
    };
    p.on('batch', onBatch);
    stopObserving = () => p.off('batch', onBatch);
  }
  let stopObserving = () => {};
  app.addHook('onClose', async () => stopObserving());
  // Once the model is there: the prompt bound is measured and the prompt worker starts.
  ready.then(
    (p) => {
      maxPromptChars(p);
      void state.prompts.start(p.tokenizer, options.model ?? null, (why) => app.log.warn(`prompts are tokenized on the main thread: ${why}`));
    },
    () => {}, // a failed load is reported by /health and by whoever awaits `ready`
  );
  app.addHook('onClose', async () => state.prompts.close());
  // A pipeline the server loaded is the server's to free, with its backend's threads.
  if (!options.pipeline) app.addHook('onClose', async () => void (await ready.catch(() => null))?.dispose());

  const drain = async (timeoutMs = 30_000): Promise<void> => {
    closing = true;
    state.scheduler.close();
    const closed = app.close();
    const timedOut = await settlesWithin(state.scheduler.idle(), timeoutMs);
    if (timedOut) {
      state.scheduler.rejectWaiting(shuttingDown());
      // The reason makes each cut stream end with an error event instead of a normal end.
      for (const c of state.controllers) c.abort(generationCut());
      // A stream whose client stopped reading cannot send that event: closing its socket below
      // ends its write, and then its generation.
      await settlesWithin(state.scheduler.idle(), CUT_GRACE_MS);
    }
    // Responses are complete or cut: connections still open are idle, stalled or never sent a
    // request. Closing them all lets the server close and the process exit.
    const grace = setTimeout(() => app.server.closeAllConnections(), timedOut ? 0 : 200);
    await closed;
    clearTimeout(grace);
  };

  app.decorate('lithe', { state, ready, drain } satisfies LitheServerHandle);
  return app;
}

/** Waits for `p` at most `ms`; true when the time ran out first. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
