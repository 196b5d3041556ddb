/** Test servers on loopback over one random model directory per test process. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPipeline, definePlugin, type LithePlugin, type Pipeline } from '@lithe/core';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { createServer, type CreateServerOptions } from '../server.js';
import { writeRandomModel, type RandomModelOptions } from './random-model.js';

export const MODEL_ID = 'tiny-random';
export const CONTEXT = 256;

const modelDirs = new Map<string, string>();

/**
 * A random model's directory (the default one, or one with another template or context),
 * written on first use and removed when the process exits.
 */
export function testModelDir(opts: RandomModelOptions = {}): string {
  const key = JSON.stringify(opts);
  let dir = modelDirs.get(key);
  if (!dir) {
    const d = mkdtempSync(join(tmpdir(), 'lithe-server-test-'));
    writeRandomModel(d, opts);
    process.on('exit', () => rmSync(d, { recursive: true, force: true }));
    modelDirs.set(key, (dir = d));
  }
  return dir;
}

/** Context of the long model: streams long enough to fill a socket's buffers. */
export const LONG_CONTEXT = 4096;

/** A model with a long context, for streams of several megabytes. */
export function loadLongPipeline(plugins: LithePlugin[] = []): Promise<Pipeline> {
  return createPipeline({ model: testModelDir({ context: LONG_CONTEXT }), cacheSize: LONG_CONTEXT, backend: 'wasm', plugins });
}

/** Sleeps before every decode step: a generation that lasts long enough to be caught mid-way. */
export const slowDecode = definePlugin((ms: number) => ({
  name: 'slow-decode',
  wrapDecode: (next) => async (state) => {
    await new Promise((r) => setTimeout(r, ms));
    return next(state);
  },
}));

export function loadTestPipeline(plugins: LithePlugin[] = []): Promise<Pipeline> {
  return createPipeline({ model: testModelDir(), cacheSize: CONTEXT, plugins });
}

export interface TestServer {
  app: FastifyInstance;
  /** http://127.0.0.1:port */
  url: string;
  client: OpenAI;
  close(): Promise<void>;
}

export async function startTestServer(opts: Partial<CreateServerOptions> = {}): Promise<TestServer> {
  // `model`: the files the prompt worker takes its tokenizer from (the tests' models share one).
  const app = createServer({ modelId: MODEL_ID, model: testModelDir(), ...opts, ...(opts.pipeline || opts.loadPipeline ? {} : { pipeline: await loadTestPipeline() }) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: opts.apiKey ?? 'unused', maxRetries: 0, timeout: 20_000 });
  return { app, url, client, close: () => app.lithe.drain(5000) };
}

/** POSTs JSON (or raw bytes) and returns the status and parsed body. */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown; text: string; headers: Headers }> {
  const raw = body instanceof Uint8Array || typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: raw });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: the caller looks at text
  }
  return { status: res.status, json, text, headers: res.headers };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Milliseconds from the first byte sent to the connection's end. */
  ms: number;
}

/** The port of a URL such as http://127.0.0.1:1234. */
export const portOf = (url: string) => Number(new URL(url).port);

/**
 * Sends `request` verbatim (what fetch would refuse or rewrite: absolute-form targets, odd
 * framing, a Host of our choosing) and reads until the server closes the connection.
 */
export function rawRequest(port: number, request: string | Buffer, { timeoutMs = 10_000 } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => (socket.destroy(), reject(new Error('no response in time'))), timeoutMs);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => {}); // a reset after the response still ends it below
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const head = text.slice(0, Math.max(0, text.indexOf('\r\n\r\n')));
      const [statusLine, ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0), headers, body: text.slice(head.length + 4), ms: performance.now() - t0 });
    });
    socket.write(request);
  });
}

/** A raw HTTP/1.1 request with `Connection: close` (Host 127.0.0.1 unless `headers` has one). */
export function httpRequest(method: string, target: string, { body, headers = {} }: { body?: string; headers?: Record<string, string> } = {}): string {
  const h: Record<string, string> = { host: '127.0.0.1', connection: 'close', ...headers };
  if (body !== undefined && !('content-length' in h) && !('transfer-encoding' in h)) h['content-length'] = String(Buffer.byteLength(body));
  return `${method} ${target} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body ?? ''}`;
}

/**
 * Opens a stream over a raw socket and never reads it: once the socket's buffers are full the
 * server's writes stall. Resolves with the socket once the response headers have arrived.
 */
export function stalledStream(port: number, path: string, body: unknown): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    const json = JSON.stringify(body);
    socket.once('data', () => {
      socket.pause();
      resolve(socket);
    });
    socket.once('close', () => reject(new Error('the server closed the stream before it started')));
    socket.write(httpRequest('POST', path, { body: json, headers: { 'content-type': 'application/json', connection: 'keep-alive' } }));
  });
}

/** GETs `url` a few times: the connection opens and the route's code is compiled before it is timed. */
export async function warmUp(url: string, times = 20): Promise<void> {
  for (let i = 0; i < times; i++) await (await fetch(url)).arrayBuffer();
}

/**
 * Polls `url` every `everyMs` until `until` settles; the slowest answer in ms, and how many
 * came. Call `warmUp(url)` first.
 */
export async function worstLatency(url: string, until: Promise<unknown>, everyMs = 20): Promise<{ worstMs: number; count: number; statuses: Set<number> }> {
  let done = false;
  void until.finally(() => (done = true)).catch(() => {});
  let worstMs = 0;
  let count = 0;
  const statuses = new Set<number>();
  while (!done) {
    const t0 = performance.now();
    const res = await fetch(url);
    await res.arrayBuffer();
    worstMs = Math.max(worstMs, performance.now() - t0);
    statuses.add(res.status);
    count++;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return { worstMs, count, statuses };
}

/** The value of an unlabelled-but-model series in /metrics text, e.g. lithe_num_requests_running. */
export async function metric(url: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const re = new RegExp(`^${name}\\{model_name="${MODEL_ID}"${labels}\\} (\\S+)$`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : 0;
}

/** Polls `check` every `everyMs` until it is true (or fails after `ms`). */
export async function eventually(check: () => Promise<boolean>, ms = 5000, everyMs = 10): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface ChildServer {
  child: ChildProcess;
  url: string;
  /** What the server wrote to stderr so far. */
  stderr(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/**
 * The real `lithe-server` (dist/bin.js) in a child process, loaded and listening on a free port:
 * measurements of its latency do not share an event loop with the test's clients.
 */
export async function spawnServer(args: string[], { model = testModelDir() } = {}): Promise<ChildServer> {
  const bin = fileURLToPath(new URL('../../dist/bin.js', import.meta.url));
  const child = spawn(process.execPath, [bin, '--model', model, '--port', '0', '--quiet', '--model-id', MODEL_ID, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await Promise.race([
    eventually(async () => stderr.includes('model loaded'), 60_000),
    exited.then((code) => Promise.reject(new Error(`lithe-server exited ${code}: ${stderr}`))),
  ]);
  return { child, url: /listening on (\S+)/.exec(stderr)![1], stderr: () => stderr, exited };
}
