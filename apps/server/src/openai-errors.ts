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
  new OpenAIError(503, 'The server is busy: the request queue is full. Retry later.', 'overloaded_error', null, 'queue_full');

export const modelLoading = () => new OpenAIError(503, 'The model is still loading. Retry later.', 'server_error', null, 'model_loading');

export const shuttingDown = () => new OpenAIError(503, 'The server is shutting down.', 'server_error', null, 'shutting_down');

export const internalError = () => new OpenAIError(500, 'The server failed to process the request.', 'server_error', null, 'internal_error');
