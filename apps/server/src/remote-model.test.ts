// The server loads `hf:owner/repo` (and http(s) URLs) through createPipeline, like a directory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPipeline } from '@lithe/core';
import { startHubServer, type HubServer } from '@lithe/core/testing';
import { startServer } from './start-server.js';
import { testModelDir } from './testing/harness.js';

let hub: HubServer;
let cache: string;
const model = testModelDir();

beforeAll(async () => {
  hub = await startHubServer({ repos: { 'lithe/random': { main: model } } });
  cache = mkdtempSync(join(tmpdir(), 'lithe-server-remote-'));
});
afterAll(async () => {
  await hub?.close();
  rmSync(cache, { recursive: true, force: true });
});

it('serves hf:owner/repo from HF_ENDPOINT under the id owner/repo, with the directory\'s completions', async () => {
  process.env.HF_ENDPOINT = hub.endpoint;
  process.env.LITHE_CACHE = cache;
  const server = await startServer({ model: 'hf:lithe/random', port: 0, backend: 'cpu', logger: false });
  try {
    await server.ready;
    const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(['lithe/random']);
    const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'lithe/random', prompt: 'Once upon a time', max_tokens: 6, temperature: 0 }) });
    const body = (await res.json()) as { choices: { text: string }[] };
    const local = await createPipeline({ model, backend: 'cpu' });
    const expected = (await local.generate('Once upon a time', { maxTokens: 6, temperature: 0 }).result).text;
    local.dispose();
    expect(body.choices[0].text).toBe(expected);
  } finally {
    delete process.env.HF_ENDPOINT;
    delete process.env.LITHE_CACHE;
    await server.close();
  }
});
