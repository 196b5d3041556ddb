// `--model hf:owner/repo` and `--model http(s)://...` go through the same code as a directory.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPipeline } from '@lithe/core';
import { startHubServer, type HubServer } from '@lithe/core/testing';
import { writeRandomModel } from './testing/random-model.js';

const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const PROMPT = 'Once upon a time';

function lithe(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, LITHE_DEBUG: '', ...env } }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });
}

let root: string;
let model: string;
let hub: HubServer;
let expected: number[];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'lithe-cli-remote-'));
  model = join(root, 'model');
  writeRandomModel(model);
  hub = await startHubServer({ repos: { 'lithe/random': { main: model } } });
  const p = await createPipeline({ model, backend: 'cpu' });
  expected = (await p.generate(PROMPT, { temperature: 0, maxTokens: 8 }).result).tokenIds;
  p.dispose();
});

afterAll(async () => {
  await hub?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

const generate = (modelArg: string, env: Record<string, string>) => lithe(['generate', '--model', modelArg, '--prompt', PROMPT, '--temperature', '0', '--max-tokens', '8', '--backend', 'cpu', '--json'], env);

describe('lithe generate --model <remote>', () => {
  it('hf:owner/repo downloads into LITHE_CACHE from HF_ENDPOINT and generates what the directory does', async () => {
    const cache = join(root, 'cache');
    const r = await generate('hf:lithe/random', { HF_ENDPOINT: hub.endpoint, LITHE_CACHE: cache });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { token_ids: number[] }).token_ids).toEqual(expected);
    expect(readdirSync(join(cache, 'http', hub.endpoint.replace('http://', '').replace(':', '%3a'), 'lithe', 'random', 'resolve', 'main'))).toContain('model.safetensors');
  });

  it('an http URL of the directory, read in place', async () => {
    const r = await generate(`${hub.endpoint}/lithe/random/resolve/main/`, {});
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { token_ids: number[] }).token_ids).toEqual(expected);
  });

  it('a repository the endpoint does not have fails with a sentence', async () => {
    const r = await generate('hf:lithe/missing', { HF_ENDPOINT: hub.endpoint, LITHE_CACHE: join(root, 'cache2') });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/hf:lithe\/missing@main is not a model directory: config\.json is missing/);
  });
});
