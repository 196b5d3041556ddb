/** Test servers on loopback over one random model directory per test process. */
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPipeline, definePlugin, type LithePlugin, type Pipeline } from '@lithe/core';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { createServer, type CreateServerOptions } from '../server.js';
import { writeRandomModel } from './random-model.js';

export const MODEL_ID = 'tiny-random';
export const CONTEXT = 256;

let modelDir: string | null = null;

/** The random model's directory, written on first use and removed when the process exits. */
export function testModelDir(): string {
  if (!modelDir) {
    const dir = mkdtempSync(join(tmpdir(), 'lithe-server-test-'));
    writeRandomModel(dir);
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    modelDir = dir;
  }
  return modelDir;
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
  const app = createServer({ modelId: MODEL_ID, ...opts, ...(opts.pipeline || opts.loadPipeline ? {} : { pipeline: await loadTestPipeline() }) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: opts.apiKey ?? 'unused', maxRetries: 0, timeout: 20_000 });
  return { app, url, client, close: () => app.lithe.drain(5000) };
}

/** POSTs JSON (or raw bytes) and returns the status and parsed body. */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown; text: string }> {
  const raw = body instanceof Uint8Array || typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: raw });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: the caller looks at text
  }
  return { status: res.status, json, text };
}

/** The value of an unlabelled-but-model series in /metrics text, e.g. lithe_num_requests_running. */
export async function metric(url: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const re = new RegExp(`^${name}\\{model_name="${MODEL_ID}"${labels}\\} (\\S+)$`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : 0;
}

/** Polls `check` until it is true (or fails after `ms`). */
export async function eventually(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
