/**
 * Errors in OpenAI's shape: `{ "error": { "message", "type", "param", "code" } }`. Messages name
 * the offending field and what it accepts, never the value the client sent.
 */
export type OpenAIErrorType = 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'server_error' | 'overloaded_error';

export interface OpenAIErrorBody {
  error: { message: string; type: OpenAIErrorType; param: string | null; code: string | null };
}

export class OpenAIError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: OpenAIErrorType,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Seconds a client should wait before trying again (sent as `Retry-After`). */
    readonly retryAfter: number | null = null,
  ) {
    super(message);
    this.name = 'OpenAIError';
  }

  toJSON(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400: a field is missing, of the wrong type or out of range. */
export const invalidRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new OpenAIError(400, message, 'invalid_request_error', param, code);

export const unauthorized = () =>
  new OpenAIError(401, 'Incorrect or missing API key: send it as "Authorization: Bearer <key>".', 'authentication_error', null, 'invalid_api_key');

export const modelNotFound = (served: string) =>
  new OpenAIError(404, `The requested model does not exist; this server serves '${served}'.`, 'invalid_request_error', 'model', 'model_not_found');

export const notFound = (what = 'route') => new OpenAIError(404, `Unknown ${what}.`, 'not_found_error', null, 'not_found');

export const bodyTooLarge = (limit: number) =>
  new OpenAIError(413, `The request body is larger than ${limit} bytes.`, 'invalid_request_error', null, 'request_too_large');

export const queueFull = () =>
  new OpenAIError(503, 'The server is busy: the request queue is full. Retry later.', 'overloaded_error', null, 'queue_full', 1);

export const modelLoadFailed = () => new OpenAIError(503, 'The model failed to load; the server log says why.', 'server_error', null, 'model_load_failed');

export const modelLoading = () => new OpenAIError(503, 'The model is still loading. Retry later.', 'server_error', null, 'model_loading', 5);

export const shuttingDown = () => new OpenAIError(503, 'The server is shutting down.', 'server_error', null, 'shutting_down');

/** Ends a stream that a drain had to cut: the text so far is not the whole completion. */
export const generationCut = () =>
  new OpenAIError(503, 'The server is shutting down: the generation was stopped before it finished.', 'server_error', null, 'shutting_down');

export const unsupportedMediaType = () =>
  new OpenAIError(415, 'Unsupported content type: send the body as JSON with "Content-Type: application/json".', 'invalid_request_error', null, 'unsupported_media_type');

export const hostNotAllowed = () =>
  new OpenAIError(
    403,
    'The Host header is not a loopback name or address. Without an API key this server only answers to localhost, 127.0.0.0/8 and [::1]: set --api-key, or listen on a non-loopback --host.',
    'invalid_request_error',
    null,
    'host_not_allowed',
  );

export const originNotAllowed = () =>
  new OpenAIError(403, 'This origin may not call the server from a browser: list it in --cors.', 'invalid_request_error', null, 'origin_not_allowed');

export const requestTimeout = (seconds: number) =>
  new OpenAIError(408, `The request did not arrive in full within ${seconds} s (--request-timeout).`, 'invalid_request_error', null, 'request_timeout');

export const templateTimeout = (ms: number) =>
  new OpenAIError(
    500,
    `The model's chat template did not finish rendering within ${ms} ms; the template loops or is too slow (the limit is --template-timeout-ms).`,
    'server_error',
    null,
    'chat_template_timeout',
  );

export const templateFailed = (why: string) =>
  new OpenAIError(500, `The model's chat template could not be rendered: ${why}.`, 'server_error', null, 'chat_template_failed');

export const internalError = () => new OpenAIError(500, 'The server failed to process the request.', 'server_error', null, 'internal_error');
