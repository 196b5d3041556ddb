/**
 * Errors Node's HTTP parser raises before a request reaches Fastify (malformed framing, headers
 * too large, a request that does not arrive in time): answered in OpenAI's error shape too, on
 * the raw socket, and the connection closed.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { OpenAIError, requestTimeout } from './openai-errors.js';

/** The OpenAI-shaped error for a Node parser or timeout error code. */
export function clientErrorToOpenAI(code: string | undefined, requestTimeoutSeconds: number): OpenAIError {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return requestTimeout(requestTimeoutSeconds);
    case 'HPE_HEADER_OVERFLOW':
      return new OpenAIError(431, 'The request headers are too large.', 'invalid_request_error', null, 'headers_too_large');
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return new OpenAIError(400, 'The request has both Transfer-Encoding and Content-Length: send one of them.', 'invalid_request_error', null, 'invalid_framing');
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_INVALID_CHUNK_SIZE':
      return new OpenAIError(400, 'The request body framing (Transfer-Encoding) is invalid.', 'invalid_request_error', null, 'invalid_framing');
    default:
      return new OpenAIError(400, 'The request is not valid HTTP/1.1.', 'invalid_request_error', null, 'bad_request');
  }
}

/** Writes `e` as a complete HTTP response on `socket` and closes it (unless a response already started). */
export function answerOnSocket(socket: Socket, e: OpenAIError): boolean {
  // Node sets _httpMessage to the response being written; once its headers are out, a second
  // status line would corrupt the stream, so the connection is just closed (as Node does).
  const current = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!socket.writable || current?.headersSent) {
    socket.destroy();
    return false;
  }
  const body = JSON.stringify(e.toJSON());
  socket.end(
    `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? 'Error'}\r\n` +
      'content-type: application/json; charset=utf-8\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      'connection: close\r\n\r\n' +
      body,
  );
  return true;
}
