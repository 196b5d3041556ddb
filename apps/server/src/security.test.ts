/** The API key against every spelling of a path, content types, CORS, Host checks, Node-level errors. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pipeline } from '@lithe/core';
import { httpRequest, loadTestPipeline, metric, MODEL_ID, portOf, post, rawRequest, spawnServer, startTestServer, type TestServer } from './testing/harness.js';

let pipeline: Pipeline;
beforeAll(async () => {
  pipeline = await loadTestPipeline();
});

const chatBody = JSON.stringify({ model: MODEL_ID, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 });
const completionBody = JSON.stringify({ model: MODEL_ID, prompt: 'Hi', max_tokens: 2 });

describe('API key on what the router matches', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ pipeline, apiKey: 'sekret' });
  });
  afterAll(() => server.close());

  const json = { 'content-type': 'application/json' };
  // Each spelling is sent raw, as written: fetch would normalise some of them away.
  const variants: [string, string, string][] = [
    ['percent-encoded prefix', 'POST', '/%76%31/chat/completions'],
    ['percent-encoded digit', 'GET', '/%761/models'],
    ['percent-encoded route', 'POST', '/v1/%63hat/completions'],
    ['all percent-encoded', 'POST', '/%76%31%2f%63%6f%6d%70%6c%65%74%69%6f%6e%73'],
    ['doubled slash in front', 'POST', '//v1/chat/completions'],
    ['doubled slash inside', 'POST', '/v1//completions'],
    ['trailing slash', 'POST', '/v1/completions/'],
    ['upper case', 'POST', '/V1/chat/completions'],
    ['mixed case', 'POST', '/v1/Completions'],
    ['dot segment', 'POST', '/v1/./completions'],
    ['dot-dot segment', 'POST', '/x/../v1/completions'],
    ['encoded dot-dot', 'POST', '/%2e%2e/v1/completions'],
    ['dot-dot after the prefix', 'POST', '/v1/models/../completions'],
    ['query string', 'POST', '/v1/completions?x=1'],
    ['semicolon', 'POST', '/v1/completions;x=1'],
    ['model id encoded', 'GET', `/v1/models/%74${MODEL_ID.slice(1)}`],
    ['unknown route', 'POST', '/v1/embeddings'],
  ];

  for (const [name, method, path] of variants) {
    it(`${name} (${method} ${path}): 401 or 404, never a generation`, async () => {
      const before = await metric(server.url, 'lithe_generation_tokens_total');
      const body = path.includes('chat') ? chatBody : completionBody;
      const r = await rawRequest(portOf(server.url), httpRequest(method, path, method === 'POST' ? { body, headers: json } : {}));
      expect([401, 404]).toContain(r.status);
      expect(JSON.parse(r.body)).toMatchObject({ error: { type: r.status === 401 ? 'authentication_error' : 'not_found_error' } });
      expect(await metric(server.url, 'lithe_generation_tokens_total')).toBe(before);
    });
  }

  it('absolute-form targets (POST http://host/v1/...) need the key too', async () => {
    const before = await metric(server.url, 'lithe_generation_tokens_total');
    for (const target of [`http://127.0.0.1:${portOf(server.url)}/v1/chat/completions`, 'http://elsewhere.example/v1/completions', `HTTP://127.0.0.1/%76%31/completions`]) {
      const r = await rawRequest(portOf(server.url), httpRequest('POST', target, { body: target.includes('chat') ? chatBody : completionBody, headers: json }));
      expect([400, 401, 404]).toContain(r.status);
      expect(r.status === 200).toBe(false);
    }
    expect(await metric(server.url, 'lithe_generation_tokens_total')).toBe(before);
  });

  it('the encoded spellings that reach a route do generate with the key', async () => {
    const auth = { ...json, authorization: 'Bearer sekret' };
    const r = await rawRequest(portOf(server.url), httpRequest('POST', '/%76%31/completions', { body: completionBody, headers: auth }));
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ usage: { completion_tokens: 2 } });
    const wrongLength = await rawRequest(portOf(server.url), httpRequest('POST', '/v1/completions', { body: completionBody, headers: { ...json, authorization: 'Bearer sekret-and-more' } }));
    expect(wrongLength.status).toBe(401);
  });
});

describe('content types', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ pipeline });
  });
  afterAll(() => server.close());

  it('415 in OpenAI shape for a JSON body sent as text/plain, a form or without a type; no generation', async () => {
    const before = await metric(server.url, 'lithe_generation_tokens_total');
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonp']) {
      const r = await post(`${server.url}/v1/chat/completions`, chatBody, { 'content-type': type });
      expect(r.status, type).toBe(415);
      expect(r.json).toMatchObject({ error: { type: 'invalid_request_error', code: 'unsupported_media_type' } });
    }
    const untyped = await rawRequest(portOf(server.url), httpRequest('POST', '/v1/completions', { body: completionBody }));
    expect(untyped.status).toBe(415);
    expect(await metric(server.url, 'lithe_generation_tokens_total')).toBe(before);
  });

  it('application/json with a charset or in upper case is JSON', async () => {
    expect((await post(`${server.url}/v1/completions`, completionBody, { 'content-type': 'application/json; charset=utf-8' })).status).toBe(200);
    expect((await post(`${server.url}/v1/completions`, completionBody, { 'content-type': 'Application/JSON' })).status).toBe(200);
  });
});

describe('CORS', () => {
  const preflight = (url: string, origin: string) =>
    fetch(`${url}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });

  it('none by default: preflights are refused and responses carry no CORS headers', async () => {
    const server = await startTestServer({ pipeline });
    try {
      const p = await preflight(server.url, 'https://app.example');
      expect(p.status).toBe(403);
      expect(p.headers.get('access-control-allow-origin')).toBeNull();
      const r = await post(`${server.url}/v1/completions`, completionBody, { origin: 'https://app.example' });
      expect(r.status).toBe(200);
      expect(r.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await server.close();
    }
  });

  it('listed origins get preflights and headers, on JSON and on streams; others do not', async () => {
    const server = await startTestServer({ pipeline, cors: ['https://app.example'], apiKey: 'k' });
    try {
      const p = await preflight(server.url, 'https://app.example');
      expect(p.status).toBe(204);
      expect(p.headers.get('access-control-allow-origin')).toBe('https://app.example');
      expect(p.headers.get('access-control-allow-methods')).toContain('POST');
      expect(p.headers.get('access-control-allow-headers')).toBe('authorization, content-type');
      expect(p.headers.get('vary')).toBe('Origin');
      expect((await preflight(server.url, 'https://evil.example')).status).toBe(403);
      const auth = { origin: 'https://app.example', authorization: 'Bearer k' };
      const r = await post(`${server.url}/v1/completions`, completionBody, auth);
      expect(r.headers.get('access-control-allow-origin')).toBe('https://app.example');
      const s = await post(`${server.url}/v1/completions`, { ...JSON.parse(completionBody), stream: true }, auth);
      expect(s.text.endsWith('data: [DONE]\n\n')).toBe(true);
      expect(s.headers.get('access-control-allow-origin')).toBe('https://app.example');
      const other = await post(`${server.url}/v1/completions`, completionBody, { ...auth, origin: 'https://evil.example' });
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await server.close();
    }
  });

  it("'*' allows any origin", async () => {
    const server = await startTestServer({ pipeline, cors: '*' });
    try {
      const p = await preflight(server.url, 'https://anything.example');
      expect(p.status).toBe(204);
      expect(p.headers.get('access-control-allow-origin')).toBe('*');
    } finally {
      await server.close();
    }
  });
});

describe('Host header (DNS rebinding)', () => {
  const withHost = (url: string, host: string) => rawRequest(portOf(url), httpRequest('GET', '/v1/models', { headers: { host } }));

  it('without a key on loopback: loopback names and addresses only, any port', async () => {
    const server = await startTestServer({ pipeline });
    try {
      for (const host of ['localhost', 'localhost:8080', 'LOCALHOST:1', '127.0.0.1', '127.1.2.3:99', '[::1]', '[::1]:8080', '[0:0:0:0:0:0:0:1]:80']) {
        expect((await withHost(server.url, host)).status, host).toBe(200);
      }
      for (const host of ['evil.example', 'evil.example:8080', '127.0.0.1.evil.example', 'localhost.evil.example', '10.0.0.1', '[::2]', '0.0.0.0']) {
        const r = await withHost(server.url, host);
        expect(r.status, host).toBe(403);
        expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'host_not_allowed' } });
      }
    } finally {
      await server.close();
    }
  });

  it('with a key, or bound to a non-loopback interface, any Host is answered', async () => {
    const keyed = await startTestServer({ pipeline, apiKey: 'k' });
    const open = await startTestServer({ pipeline, host: '0.0.0.0' });
    try {
      const r = await rawRequest(portOf(keyed.url), httpRequest('GET', '/v1/models', { headers: { host: 'evil.example', authorization: 'Bearer k' } }));
      expect(r.status).toBe(200);
      expect((await withHost(open.url, 'lan-name.example')).status).toBe(200);
    } finally {
      await keyed.close();
      await open.close();
    }
  });

  it('lithe-server warns on stderr when it listens on a non-loopback address without a key', async () => {
    const open = await spawnServer(['--host', '0.0.0.0']);
    const keyed = await spawnServer(['--host', '0.0.0.0', '--api-key', 'k']);
    try {
      expect(open.stderr()).toMatch(/warning: listening on 0\.0\.0\.0 without an API key/);
      expect(keyed.stderr()).not.toContain('warning');
    } finally {
      open.child.kill('SIGKILL');
      keyed.child.kill('SIGKILL');
    }
  }, 60_000);
});

describe('errors from below Fastify are OpenAI-shaped', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ pipeline, maxBodyBytes: 1024 });
  });
  afterAll(() => server.close());

  const shaped = (body: string) => JSON.parse(body) as { error: { message: string; type: string; code: string | null } };

  it('400 for Transfer-Encoding together with Content-Length', async () => {
    const r = await rawRequest(
      portOf(server.url),
      `POST /v1/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n`,
    );
    expect(r.status).toBe(400);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(shaped(r.body).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_framing' });
  });

  it('431 for headers over the limit', async () => {
    const r = await rawRequest(portOf(server.url), httpRequest('GET', '/v1/models', { headers: { 'x-big': 'a'.repeat(20_000) } }));
    expect(r.status).toBe(431);
    expect(shaped(r.body).error.code).toBe('headers_too_large');
  });

  it('413 for a declared length over the limit, before the body is read', async () => {
    const r = await rawRequest(portOf(server.url), `POST /v1/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100000\r\nconnection: close\r\n\r\n{`);
    expect(r.status).toBe(413);
    expect(shaped(r.body).error.code).toBe('request_too_large');
  });

  it('400 for a path that does not decode, and for garbage instead of HTTP', async () => {
    const bad = await rawRequest(portOf(server.url), httpRequest('GET', '/v1/models/%zz'));
    expect(bad.status).toBe(400);
    expect(shaped(bad.body).error.type).toBe('invalid_request_error');
    const garbage = await rawRequest(portOf(server.url), 'NOT HTTP AT ALL\r\n\r\n');
    expect(garbage.status).toBe(400);
    expect(shaped(garbage.body).error.code).toBe('bad_request');
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });
});
