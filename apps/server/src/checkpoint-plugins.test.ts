/** lithe-server loads checkpoints that need a plugin by itself (here LCKV), and takes --kv-quant. */
import { fileURLToPath } from 'node:url';
import { createPipeline } from '@lithe/core';
import { lckv } from '@lithe/lckv';
import { afterAll, describe, expect, it } from 'vitest';
import { checkpointPlugins } from './checkpoint-plugins.js';
import { MODEL_ID, spawnServer, type ChildServer } from './testing/harness.js';

const fixtures = fileURLToPath(new URL('../../../tooling/fixtures/models/', import.meta.url));

describe('checkpoint plugins', () => {
  it('names the plugins a directory needs from its config.json, and none for a plain Llama', async () => {
    expect((await checkpointPlugins(`${fixtures}tiny-brown-lckv`)).map((p) => p.name)).toEqual(['lckv']);
    expect(await checkpointPlugins(`${fixtures}tiny-brown`)).toEqual([]);
    await expect(checkpointPlugins(`${fixtures}tiny-brown`, { lckvPrefill: 'sequential' })).rejects.toThrow(/--lckv-prefill applies to LCKV models/);
  });

  const servers: ChildServer[] = [];
  afterAll(() => servers.forEach((s) => s.child.kill()));

  it('lithe-server serves an LCKV checkpoint with a quantized KV cache, as the API does with lckv()', { timeout: 120_000 }, async () => {
    const model = `${fixtures}tiny-brown-lckv`;
    const server = await spawnServer(['--backend', 'wasm', '--kv-quant', 'int8', '--lckv-prefill', 'sequential'], { model });
    servers.push(server);
    const body = { model: MODEL_ID, prompt: 'The jury said that', max_tokens: 16, temperature: 0 };
    const r = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(r.status).toBe(200);
    const text = ((await r.json()) as { choices: { text: string }[] }).choices[0].text;
    const { kvQuant } = await import('@lithe/kv-quant');
    const p = await createPipeline({ model, backend: 'wasm', plugins: [kvQuant({ bits: 8 }), lckv({ prefill: 'sequential' })] });
    const want = await p.generate(body.prompt, { maxTokens: 16, temperature: 0 }).result;
    p.dispose();
    expect(text).toBe(want.text);
  });
});
