/** Clients that stop reading, that trickle their request in, and shutdown with such clients connected. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pipeline } from '@lithe/core';
import {
  eventually,
  LONG_CONTEXT,
  loadLongPipeline,
  loadTestPipeline,
  metric,
  MODEL_ID,
  portOf,
  post,
  rawRequest,
  slowDecode,
  stalledStream,
  startTestServer,
  testModelDir,
  type TestServer,
} from './testing/harness.js';

// A chat stream with 20 top logprobs per token sends a few kilobytes per token: a few thousand
// tokens fill the socket buffers of a client that does not read (megabytes on loopback). Greedy:
// the test model's EOS logit is 0, never the largest, while a sampled stream of a few thousand
// tokens ends by EOS about one time in six, before the socket fills.
const longChat = { model: MODEL_ID, messages: [{ role: 'user', content: 'Go on.' }], max_tokens: LONG_CONTEXT - 64, stream: true, logprobs: true, top_logprobs: 20, temperature: 0 };

describe('a client that opens a stream and never reads', () => {
  let long: Pipeline;
  let server: TestServer;
  beforeAll(async () => {
    long = await loadLongPipeline();
    server = await startTestServer({ pipeline: long, model: testModelDir({ context: LONG_CONTEXT }), parallel: 1, maxQueue: 4, writeTimeoutMs: 400 });
  });
  afterAll(() => server.close());

  it('stops generating while the socket is full, is cut after the write timeout; the queued request completes', async () => {
    const tokensBefore = await metric(server.url, 'lithe_generation_tokens_total');
    const abortsBefore = await metric(server.url, 'lithe_requests_total', ',endpoint="chat",outcome="abort"');
    const t0 = performance.now();
    const stalled = await stalledStream(portOf(server.url), '/v1/chat/completions', longChat);
    await eventually(async () => (await metric(server.url, 'lithe_num_requests_running')) === 1, 5000);
    // Another client's request waits for the one slot, then runs once the stalled stream is cut.
    const other = await post(`${server.url}/v1/completions`, { model: MODEL_ID, prompt: 'Hello', max_tokens: 4 });
    const otherDoneMs = performance.now() - t0;
    expect(other.status).toBe(200);
    expect(other.json).toMatchObject({ usage: { completion_tokens: 4 } });
    await eventually(async () => (await metric(server.url, 'lithe_num_requests_running')) === 0, 5000);
    expect(await metric(server.url, 'lithe_requests_total', ',endpoint="chat",outcome="abort"')).toBe(abortsBefore + 1);
    // Backpressure held the generation back: it stopped far short of what it was asked for.
    const generated = (await metric(server.url, 'lithe_generation_tokens_total')) - tokensBefore - 4;
    expect(generated).toBeGreaterThan(0);
    expect(generated).toBeLessThan(longChat.max_tokens);
    console.log(`stalled stream: ${generated} tokens before the stall; the queued request done at ${otherDoneMs.toFixed(0)} ms`);
    stalled.destroy();
  }, 240_000);
});

describe('requests that trickle in', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ pipeline: await loadTestPipeline(), requestTimeoutMs: 600 });
  });
  afterAll(() => server.close());

  it('408 in OpenAI shape for headers that never finish', async () => {
    const r = await rawRequest(portOf(server.url), 'POST /v1/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: a');
    expect(r.status).toBe(408);
    expect(JSON.parse(r.body)).toMatchObject({ error: { type: 'invalid_request_error', code: 'request_timeout' } });
    expect(r.ms).toBeLessThan(600 + 1500);
  });

  it('408 for a body that trickles in; the server keeps serving', async () => {
    const body = JSON.stringify({ model: MODEL_ID, prompt: 'Hi', max_tokens: 2 });
    const head = `POST /v1/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`;
    const { connect } = await import('node:net');
    const r = await new Promise<{ text: string; ms: number }>((resolve) => {
      const t0 = performance.now();
      const s = connect(portOf(server.url), '127.0.0.1');
      let text = '';
      s.on('data', (d: Buffer) => (text += d.toString()));
      s.on('error', () => {});
      s.write(head);
      let i = 0;
      const drip = setInterval(() => (i < body.length - 1 ? s.write(body[i++]) : undefined), 100);
      s.on('close', () => (clearInterval(drip), resolve({ text, ms: performance.now() - t0 })));
    });
    expect(r.text).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.text).toContain('"code":"request_timeout"');
    expect(r.ms).toBeLessThan(600 + 1500);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  it('an idle keep-alive connection is not answered with a 408; a request that arrived is not timed', async () => {
    const { connect } = await import('node:net');
    const text = await new Promise<string>((resolve) => {
      const s = connect(portOf(server.url), '127.0.0.1');
      let t = '';
      s.on('data', (d: Buffer) => (t += d.toString()));
      s.on('error', () => {});
      s.write('GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
      setTimeout(() => (s.destroy(), resolve(t)), 1800);
    });
    expect(text.match(/HTTP\/1\.1 \d{3}/g)).toEqual(['HTTP/1.1 200']);
    const slowServer = await startTestServer({ pipeline: await loadTestPipeline([slowDecode(20)]), requestTimeoutMs: 600 });
    try {
      const t0 = performance.now();
      const r = await post(`${slowServer.url}/v1/completions`, { model: MODEL_ID, prompt: 'Hi', max_tokens: 60 });
      expect(performance.now() - t0).toBeGreaterThan(1000);
      expect(r.status).toBe(200);
    } finally {
      await slowServer.close();
    }
  });
});

describe('a drain that runs out of time', () => {
  it('cuts a running stream with an error event, never stop + [DONE]', async () => {
    const server = await startTestServer({ pipeline: await loadTestPipeline([slowDecode(20)]) });
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL_ID, messages: [{ role: 'user', content: 'x' }], max_tokens: 200, stream: true, stream_options: { include_usage: true } }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    await server.app.lithe.drain(200);
    let text = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += Buffer.from(r.value).toString();
    const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
    const last = JSON.parse(events.at(-1)!.slice(6)) as { error?: { code: string; type: string } };
    expect(last.error).toMatchObject({ code: 'shutting_down', type: 'server_error' });
    expect(text).not.toContain('[DONE]');
    expect(text).not.toContain('"finish_reason":"stop"');
    expect(text).not.toContain('"finish_reason":"length"');
  });
});

describe('SIGTERM with a stalled client connected (the real bin)', () => {
  it('exits within the drain timeout + 2 s; the reading stream ends with an error event', async () => {
    const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
    // No drain time: on a quiet machine this tiny model finishes the reader's 4080 tokens within a second.
    const drainSeconds = 0;
    const args = [bin, '--model', testModelDir({ context: LONG_CONTEXT }), '--cache-size', String(LONG_CONTEXT), '--port', '0', '--quiet', '--model-id', MODEL_ID];
    args.push('--parallel', '2', '--drain-timeout', String(drainSeconds), '--write-timeout', '120');
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await eventually(async () => stderr.includes('model loaded'), 30_000);
      const url = /listening on (\S+)/.exec(stderr)![1];
      const stalled = await stalledStream(portOf(url), '/v1/chat/completions', longChat);
      // Stalled: no token for a second (the histogram counts each token as it is generated).
      let seen = -1;
      await eventually(async () => {
        const n = await metric(url, 'lithe_inter_token_latency_seconds_count');
        const still = n > 0 && n === seen;
        seen = n;
        return still;
      }, 200_000, 1000);
      const stalledAfter = seen;
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL_ID, prompt: 'x', max_tokens: LONG_CONTEXT - 16, stream: true, temperature: 0 }),
      });
      const reader = res.body!.getReader();
      await reader.read();
      const t0 = performance.now();
      child.kill('SIGTERM');
      let text = '';
      for (let r = await reader.read(); !r.done; r = await reader.read()) text += Buffer.from(r.value).toString();
      const code = await exited;
      const exitMs = performance.now() - t0;
      console.log(`SIGTERM with a stalled client (stalled after ${stalledAfter} tokens): exited ${code} after ${exitMs.toFixed(0)} ms (drain ${drainSeconds} s)`);
      expect(exitMs).toBeLessThan(drainSeconds * 1000 + 2000);
      expect(code).toBe(0);
      const last = text.split('\n\n').filter((e) => e.startsWith('data: ')).at(-1)!;
      expect(JSON.parse(last.slice(6))).toMatchObject({ error: { code: 'shutting_down' } });
      expect(text).not.toContain('[DONE]');
      stalled.destroy();
    } finally {
      child.kill('SIGKILL');
    }
  }, 300_000);
});
