import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createPipeline, openModel } from '../pipeline/create-pipeline.js';
import { startHubServer, type HubServer } from '../testing/hub-server.js';

// hf: downloads in the Hugging Face cache layout (HF_HOME), shared with huggingface_hub, against a
// local server that answers like the Hub (X-Repo-Commit, X-Linked-Etag on the CDN redirect).
const fixture = fileURLToPath(new URL('../../../../tooling/fixtures/models/tiny-brown', import.meta.url));
const FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];
const PROMPT = 'The jury said that the city';

let hub: HubServer;
let reference: number[];
let home: string;
const saved: Record<string, string | undefined> = {};
const VARS = ['HF_HOME', 'HF_HUB_CACHE', 'HF_HUB_OFFLINE', 'LITHE_CACHE', 'HF_ENDPOINT', 'HF_TOKEN'];

async function greedyIds(model: string): Promise<number[]> {
  const p = await createPipeline({ model, backend: 'cpu', kvDtype: 'f32', cacheSize: 64, download: { endpoint: hub.endpoint, chunkBytes: 1 << 20 } });
  try {
    return (await p.generate(PROMPT, { maxTokens: 12, temperature: 0, stopOnEos: false }).result).tokenIds;
  } finally {
    p.dispose();
  }
}

const commitOf = (repo: string, rev: string) => createHash('sha1').update(`${repo}@${rev}`).digest('hex');

beforeAll(async () => {
  hub = await startHubServer({ repos: { 'lithe/tiny-brown': { main: fixture }, 'lithe/from-python': { main: fixture } } });
  const p = await createPipeline({ model: fixture, backend: 'cpu', kvDtype: 'f32', cacheSize: 64 });
  reference = (await p.generate(PROMPT, { maxTokens: 12, temperature: 0, stopOnEos: false }).result).tokenIds;
  p.dispose();
});
afterAll(() => hub.close());
beforeEach(() => {
  for (const v of VARS) saved[v] = process.env[v];
  for (const v of VARS) delete process.env[v];
  home = mkdtempSync(join(tmpdir(), 'lithe-hf-home-'));
  process.env.HF_HOME = home;
  hub.requests.length = 0;
});
afterEach(() => {
  for (const v of VARS) if (saved[v] === undefined) delete process.env[v];
  else process.env[v] = saved[v];
  rmSync(home, { recursive: true, force: true });
});

describe('hf: in the Hugging Face cache layout ($HF_HOME/hub)', () => {
  it('downloads into blobs/, snapshots/<commit>/ and refs/main; a second load asks only for ETags', async () => {
    expect(await greedyIds('hf:lithe/tiny-brown')).toEqual(reference);
    const repoDir = join(home, 'hub', 'models--lithe--tiny-brown');
    const commit = readFileSync(join(repoDir, 'refs', 'main'), 'utf8');
    expect(commit).toBe(commitOf('lithe/tiny-brown', 'main'));
    for (const f of FILES) {
      const link = readlinkSync(join(repoDir, 'snapshots', commit, f));
      expect(link).toMatch(/^\.\.\/\.\.\/blobs\/[\w-]+$/);
      expect(readFileSync(join(repoDir, 'snapshots', commit, f)).equals(readFileSync(join(fixture, f)))).toBe(true);
    }
    // The weights' blob is named by the LFS ETag of the redirect, as huggingface_hub names it.
    const head = await fetch(`${hub.endpoint}/lithe/tiny-brown/resolve/main/model.safetensors`, { method: 'HEAD', redirect: 'manual' });
    expect(readlinkSync(join(repoDir, 'snapshots', commit, 'model.safetensors'))).toBe(`../../blobs/${head.headers.get('x-linked-etag')!.replace(/"/g, '')}`);
    expect(readdirSync(join(repoDir, 'blobs')).filter((b) => b.includes('incomplete'))).toEqual([]);
    hub.requests.length = 0;
    expect(await greedyIds('hf:lithe/tiny-brown')).toEqual(reference);
    expect(hub.requests.every((r) => r.method === 'HEAD')).toBe(true);
  });

  it('reuses files huggingface_hub downloaded: no body is fetched', async () => {
    // The layout huggingface_hub writes: blobs named by X-Linked-Etag (else ETag), relative symlinks, refs/main.
    const repoDir = join(home, 'hub', 'models--lithe--from-python');
    const commit = commitOf('lithe/from-python', 'main');
    mkdirSync(join(repoDir, 'blobs'), { recursive: true });
    mkdirSync(join(repoDir, 'snapshots', commit), { recursive: true });
    mkdirSync(join(repoDir, 'refs'), { recursive: true });
    writeFileSync(join(repoDir, 'refs', 'main'), commit);
    for (const f of FILES) {
      const head = await fetch(`${hub.endpoint}/lithe/from-python/resolve/main/${f}`, { method: 'HEAD', redirect: 'manual' });
      expect(head.headers.get('x-repo-commit')).toBe(commit);
      const blob = (head.headers.get('x-linked-etag') ?? head.headers.get('etag'))!.replace(/"/g, '');
      copyFileSync(join(fixture, f), join(repoDir, 'blobs', blob));
      symlinkSync(join('..', '..', 'blobs', blob), join(repoDir, 'snapshots', commit, f));
    }
    hub.requests.length = 0;
    expect(await greedyIds('hf:lithe/from-python')).toEqual(reference);
    expect(hub.requests.filter((r) => r.method !== 'HEAD')).toEqual([]);

    // HF_HUB_OFFLINE: not one request, the snapshot refs/main names is read.
    process.env.HF_HUB_OFFLINE = '1';
    hub.requests.length = 0;
    expect(await greedyIds('hf:lithe/from-python')).toEqual(reference);
    expect(hub.requests).toEqual([]);
    await expect(openModel('hf:lithe/tiny-brown', { endpoint: hub.endpoint })).rejects.toThrow(/HF_HUB_OFFLINE is set, so .* is not fetched; unset it to download/);
  });

  it('LITHE_CACHE set: hf: downloads go to lithe\'s own directory instead', async () => {
    process.env.LITHE_CACHE = join(home, 'lithe');
    expect(await greedyIds('hf:lithe/tiny-brown')).toEqual(reference);
    expect(readdirSync(home)).toEqual(['lithe']);
  });
});
