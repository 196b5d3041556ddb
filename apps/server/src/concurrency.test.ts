/** Admission, cancellation and draining, with a decode step slowed down so requests overlap. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pipeline } from '@lithe/core';
import { eventually, loadTestPipeline, metric, MODEL_ID, post, slowDecode, startTestServer, testModelDir, type TestServer } from './testing/harness.js';

let slow: Pipeline;
const messages = [{ role: 'user' as const, content: 'Go on.' }];

beforeAll(async () => {
  slow = await loadTestPipeline([slowDecode(15)]);
});

/** Starts a long stream and resolves once its first content chunk has arrived. */
async function longStream(server: TestServer, ac = new AbortController()) {
  const stream = await server.client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 200, stream: true }, { signal: ac.signal });
  const it = stream[Symbol.asyncIterator]();
  await it.next(); // role
  await it.next(); // first token
  return { ac, it };
}

describe('queue and slots (parallel 1)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ pipeline: slow, parallel: 1, maxQueue: 0 });
  });
  afterAll(() => server.close());

  it('503 when the queue is full, before any stream starts', async () => {
    const first = await longStream(server);
    try {
      expect(await metric(server.url, 'lithe_num_requests_running')).toBe(1);
      const err = await server.client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 2, stream: true }).catch((e: unknown) => e);
      expect(err).toMatchObject({ status: 503, code: 'queue_full', type: 'overloaded_error' });
      const raw = await post(`${server.url}/v1/chat/completions`, { model: MODEL_ID, messages, max_tokens: 2 });
      expect(raw.status).toBe(503);
      expect(raw.headers.get('retry-after')).toBe('1');
    } finally {
      first.ac.abort();
      await eventually(async () => (await metric(server.url, 'lithe_num_requests_running')) === 0, 2000);
    }
  });

  it('a dropped stream cancels its generation and frees the slot at once', async () => {
    const before = await metric(server.url, 'lithe_requests_total', ',endpoint="chat",outcome="abort"');
    const { ac } = await longStream(server);
    ac.abort();
    await eventually(async () => (await metric(server.url, 'lithe_num_requests_running')) === 0, 2000);
    const t0 = performance.now();
    const r = await server.client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 2 });
    expect(r.choices[0].finish_reason).toBe('length');
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(await metric(server.url, 'lithe_requests_total', ',endpoint="chat",outcome="abort"')).toBe(before + 1);
  });

  it('a dropped non-streamed request is cancelled too', async () => {
    const ac = new AbortController();
    const pending = server.client.completions.create({ model: MODEL_ID, prompt: 'x', max_tokens: 200 }, { signal: ac.signal }).catch(() => 'aborted');
    await eventually(async () => (await metric(server.url, 'lithe_num_requests_running')) === 1, 2000);
    ac.abort();
    expect(await pending).toBe('aborted');
    await eventually(async () => (await metric(server.url, 'lithe_num_requests_running')) === 0, 2000);
  });
});

describe('waiting requests', () => {
  it('queued requests run in turn; one whose client leaves drops out of the queue', async () => {
    const server = await startTestServer({ pipeline: slow, parallel: 1, maxQueue: 2 });
    try {
      const first = await longStream(server);
      const queued = server.client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 3 });
      const leaving = new AbortController();
      const gone = server.client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 3 }, { signal: leaving.signal }).catch(() => 'aborted');
      await eventually(async () => (await metric(server.url, 'lithe_num_requests_waiting')) === 2, 2000);
      const abortedBefore = await metric(server.url, 'lithe_requests_aborted_waiting_total', ',endpoint="chat"');
      leaving.abort();
      expect(await gone).toBe('aborted');
      await eventually(async () => (await metric(server.url, 'lithe_num_requests_waiting')) === 1, 2000);
      // Counted: a request that left the queue is neither finished nor refused.
      await eventually(async () => (await metric(server.url, 'lithe_requests_aborted_waiting_total', ',endpoint="chat"')) === abortedBefore + 1, 2000);
      first.ac.abort();
      expect((await queued).usage!.completion_tokens).toBe(3);
      await eventually(async () => (await metric(server.url, 'lithe_num_requests_running')) === 0 && (await metric(server.url, 'lithe_num_requests_waiting')) === 0, 2000);
    } finally {
      await server.close();
    }
  });

  it('parallel 2 runs two generations at once, each with its own seed and penalties', async () => {
    const server = await startTestServer({ pipeline: slow, parallel: 2, maxQueue: 0 });
    try {
      const ask = (seed: number, penalty: number) =>
        server.client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 12, temperature: 0.9, seed, frequency_penalty: penalty }).then((r) => r.choices[0].message.content);
      const alone = [await ask(1, 0), await ask(2, 2)];
      const together = await Promise.all([ask(1, 0), ask(2, 2)]);
      expect(together).toEqual(alone);
    } finally {
      await server.close();
    }
  });
});

describe('draining', () => {
  it('drain lets the running stream finish, refuses new requests with 503, then closes', async () => {
    const server = await startTestServer({ pipeline: slow, parallel: 1, maxQueue: 4 });
    const stream = await server.client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 30, stream: true });
    const chunks: unknown[] = [];
    const reading = (async () => {
      for await (const c of stream) chunks.push(c);
    })();
    await eventually(async () => chunks.length >= 2, 2000);
    const drained = server.app.lithe.drain(10_000);
    const refused = await post(`${server.url}/v1/chat/completions`, { model: MODEL_ID, messages, max_tokens: 2 }).catch(() => ({ status: 0 }));
    expect([0, 503]).toContain(refused.status); // 503, or the connection is refused outright
    await reading;
    await drained;
    const last = chunks.at(-1) as { choices: { finish_reason: string | null }[] };
    expect(last.choices[0].finish_reason).toBe('length');
  });

  it('lithe-server exits 0 on SIGTERM after finishing the stream in flight', async () => {
    const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
    const child = spawn(process.execPath, [bin, '--model', testModelDir(), '--port', '0', '--quiet', '--model-id', MODEL_ID], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await eventually(async () => stderr.includes('model loaded'), 20_000);
    const url = /listening on (\S+)/.exec(stderr)![1];
    const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL_ID, prompt: 'x', max_tokens: 200, stream: true }) });
    const reader = res.body!.getReader();
    await reader.read();
    child.kill('SIGTERM');
    let text = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += Buffer.from(r.value).toString();
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(await exited).toBe(0);
  });
});
