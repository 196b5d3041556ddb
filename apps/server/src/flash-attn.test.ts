/** lithe-server --flash-attn: the flash kernels serve requests with the same greedy text as core attention. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL_ID, spawnServer, type ChildServer } from './testing/harness.js';

describe('lithe-server --flash-attn', () => {
  let flash: ChildServer;
  let core: ChildServer;
  beforeAll(async () => {
    [flash, core] = [await spawnServer(['--backend', 'wasm', '--flash-attn']), await spawnServer(['--backend', 'wasm'])];
  }, 120_000);
  afterAll(() => {
    flash?.child.kill();
    core?.child.kill();
  });

  it('answers a greedy completion exactly as the server with core attention does, with no fallback notice', { timeout: 60_000 }, async () => {
    const body = { model: MODEL_ID, prompt: 'the jury said that the city', max_tokens: 24, temperature: 0 };
    const ask = async (s: ChildServer) => {
      const r = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(r.status).toBe(200);
      return ((await r.json()) as { choices: { text: string }[] }).choices[0].text;
    };
    const [a, b] = [await ask(flash), await ask(core)];
    expect(a).toBe(b);
    expect(a.length).toBeGreaterThan(0);
    expect(flash.stderr()).not.toMatch(/flash-attn:/);
  });
});
