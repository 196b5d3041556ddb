import { readFileSync, copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPipeline, openModel, type PipelineOptions } from '../pipeline/create-pipeline.js';
import { directoryCache } from '../platform/file-cache.js';
import { startHubServer, type HubServer } from '../testing/hub-server.js';
import { parseHubId } from './hf-hub.js';
import type { DownloadProgress } from './http-byte-source.js';
import { remoteModelName } from './model-location.js';
import { openFileSource } from './node-file-source.js';
import { parseSafetensors } from './safetensors.js';
import { buildSafetensors } from './test-helpers.js';

// Models by URL and by Hub id, against a local server with the Hub's URL layout (no internet here).
const fixture = fileURLToPath(new URL('../../../../tooling/fixtures/models/tiny-brown', import.meta.url));
const PROMPT = 'The jury said that the city';

async function greedyIds(opts: PipelineOptions): Promise<number[]> {
  const p = await createPipeline({ backend: 'cpu', kvDtype: 'f32', cacheSize: 64, ...opts });
  try {
    return (await p.generate(PROMPT, { maxTokens: 12, temperature: 0, stopOnEos: false }).result).tokenIds;
  } finally {
    p.dispose();
  }
}

/** tiny-brown with its weights split over two shards and an index, as large checkpoints come. */
async function shardedCopy(dir: string): Promise<void> {
  const st = await parseSafetensors(await openFileSource(join(fixture, 'model.safetensors')));
  const names = [...st.tensors.keys()];
  const halves = [names.slice(0, names.length >> 1), names.slice(names.length >> 1)];
  const weightMap: Record<string, string> = {};
  for (const [i, half] of halves.entries()) {
    const shard = `model-0000${i + 1}-of-00002.safetensors`;
    const entries = [];
    for (const name of half) {
      const t = st.tensors.get(name)!;
      entries.push({ name, dtype: t.dtype.toUpperCase(), shape: t.shape, data: (await st.read(name)).slice() });
      weightMap[name] = shard;
    }
    writeFileSync(join(dir, shard), buildSafetensors(entries, { format: 'pt' }).bytes);
  }
  await st.source.close?.();
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(fixture, f), join(dir, f));
}

let hub: HubServer;
let reference: number[];
let sharded: string;
const temps: string[] = [];
const temp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'lithe-hub-'));
  temps.push(d);
  return d;
};

beforeAll(async () => {
  sharded = temp();
  await shardedCopy(sharded);
  hub = await startHubServer({ repos: { 'lithe/tiny-brown': { main: fixture, v1: fixture }, 'lithe/tiny-brown-sharded': { main: sharded } } });
  reference = await greedyIds({ model: fixture });
});
afterAll(async () => {
  await hub.close();
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});
afterEach(() => {
  hub.requests.length = 0;
  hub.options.token = undefined;
  hub.options.etagSalt = undefined;
  hub.rangeBudget = Infinity;
  hub.cut = null;
  hub.bytesServed.clear();
});

const weightGets = () => hub.requests.filter((r) => r.method === 'GET' && r.path.includes('.safetensors') && r.status === 206);

describe('hf: ids', () => {
  it('parse owner/repo and an optional revision', () => {
    expect(parseHubId('hf:lithe/tiny-brown')).toEqual({ repo: 'lithe/tiny-brown', revision: 'main' });
    expect(parseHubId('hf:Org/Model.v2-1B@refs/pr/3')).toEqual({ repo: 'Org/Model.v2-1B', revision: 'refs/pr/3' });
    for (const bad of ['hf:', 'hf:only-owner', 'hf:a/b/c', 'hf:../x', 'hf:a/b@']) expect(() => parseHubId(bad)).toThrow(/not a Hub model id; write hf:owner\/repo/);
    expect(remoteModelName('hf:lithe/tiny-brown@v1')).toBe('lithe/tiny-brown@v1');
    expect(remoteModelName('https://host/models/tiny-brown/')).toBe('tiny-brown');
    expect(remoteModelName('./models/tiny-brown')).toBeNull();
  });
});

describe('models over HTTP', () => {
  it('an HF-layout directory URL generates the ids of the local directory, weights read by Range requests', async () => {
    expect(await greedyIds({ model: `${hub.endpoint}/lithe/tiny-brown/resolve/main/` })).toEqual(reference);
    expect(weightGets().length).toBeGreaterThan(0);
  });

  it('a sharded checkpoint over HTTP, in parallel chunks smaller than a tensor', async () => {
    expect(await greedyIds({ model: `${hub.endpoint}/lithe/tiny-brown-sharded/resolve/main`, download: { chunkBytes: 256 << 10, parallel: 3 } })).toEqual(reference);
    const shards = new Set(weightGets().map((r) => r.path.split('/').pop()));
    expect(shards).toEqual(new Set(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']));
  });

  it('a URL without config.json is not a model directory', async () => {
    await expect(openModel(`${hub.endpoint}/lithe/nothing/resolve/main/`)).rejects.toThrow(/lithe\/nothing\/resolve\/main is not a model directory: config\.json is missing/);
  });
});

describe('hf:owner/repo through a cache directory', () => {
  it('downloads once, then loads from the cache while the ETags match', async () => {
    const cache = directoryCache(temp());
    const download = { endpoint: hub.endpoint, cache, chunkBytes: 1 << 20 };
    expect(await greedyIds({ model: 'hf:lithe/tiny-brown', download })).toEqual(reference);
    expect(hub.requests.some((r) => r.path === '/lithe/tiny-brown/resolve/main/config.json')).toBe(true);
    const first = weightGets().length;
    expect(first).toBe(Math.ceil(19538464 / (1 << 20)));
    hub.requests.length = 0;
    expect(await greedyIds({ model: 'hf:lithe/tiny-brown', download })).toEqual(reference);
    expect(hub.requests.every((r) => r.method === 'HEAD')).toBe(true);
    // A new upload (other ETags) is downloaded again.
    hub.options.etagSalt = 'b';
    hub.requests.length = 0;
    expect(await greedyIds({ model: 'hf:lithe/tiny-brown', download })).toEqual(reference);
    expect(weightGets().length).toBe(first);
  });

  it('a revision, HF_ENDPOINT and HF_TOKEN', async () => {
    hub.options.token = 'hf_secret';
    const cache = directoryCache(temp());
    await expect(openModel('hf:lithe/tiny-brown@v1', { endpoint: hub.endpoint, cache })).rejects.toThrow(/HTTP 401.*pass token, or set HF_TOKEN/);
    process.env.HF_ENDPOINT = hub.endpoint;
    process.env.HF_TOKEN = 'hf_secret';
    try {
      expect(await greedyIds({ model: 'hf:lithe/tiny-brown@v1', download: { cache } })).toEqual(reference);
    } finally {
      delete process.env.HF_ENDPOINT;
      delete process.env.HF_TOKEN;
    }
    expect(hub.requests.some((r) => r.path === '/lithe/tiny-brown/resolve/v1/tokenizer.json' && r.status === 200)).toBe(true);
  });

  it('an interrupted download resumes with the chunks it lacks', async () => {
    const dir = temp();
    const download = { endpoint: hub.endpoint, cache: directoryCache(dir), chunkBytes: 1 << 20, parallel: 2, attempts: 1 };
    const chunks = Math.ceil(19538464 / (1 << 20));
    hub.rangeBudget = 7;
    await expect(greedyIds({ model: 'hf:lithe/tiny-brown', download })).rejects.toThrow(/download into .* stopped/);
    const where = join(dir, 'http', hub.endpoint.replace('http://', '').replace(':', '%3a'), 'lithe', 'tiny-brown', 'resolve', 'main');
    expect(readdirSync(where)).toContain('model.safetensors.incomplete');
    const { done } = JSON.parse(readFileSync(join(where, 'model.safetensors.incomplete.json'), 'utf8')) as { done: number[] };
    expect(done.length).toBeGreaterThan(0);
    expect(done.length).toBeLessThan(chunks);
    hub.rangeBudget = Infinity;
    hub.requests.length = 0;
    expect(await greedyIds({ model: 'hf:lithe/tiny-brown', download })).toEqual(reference);
    expect(weightGets().length).toBe(chunks - done.length);
    expect(readdirSync(where).filter((f) => f.includes('incomplete'))).toEqual([]);
  });

  it('offline, the cached copy is used', async () => {
    const cache = directoryCache(temp());
    expect(await greedyIds({ model: 'hf:lithe/tiny-brown', download: { endpoint: hub.endpoint, cache } })).toEqual(reference);
    expect(await greedyIds({ model: 'hf:lithe/tiny-brown', download: { endpoint: hub.endpoint, cache, fetch: () => Promise.reject(new Error('offline')) } })).toEqual(reference);
    await expect(openModel('hf:lithe/other', { endpoint: hub.endpoint, cache, fetch: () => Promise.reject(new Error('offline')) })).rejects.toThrow(/request failed after 3 tries: offline/);
  });

  it('without a cache, reads stay Range requests', async () => {
    expect(await greedyIds({ model: 'hf:lithe/tiny-brown', download: { endpoint: hub.endpoint, cache: false } })).toEqual(reference);
    expect(existsSync(join(fixture, 'model.safetensors.incomplete'))).toBe(false);
  });
});

describe('dropped connections and progress', () => {
  const WEIGHTS = 19538464;

  it.each([
    ['into a cache directory', true],
    ['read in place', false],
  ] as const)('a connection dropped mid-file resumes at the byte it stopped, %s: no byte is sent twice', async (_, cached) => {
    // Cuts at 300001 bytes land inside a 1 MiB chunk, never on its edge.
    hub.cut = { suffix: 'model.safetensors', afterBytes: 300001, times: 2 };
    const download = { endpoint: hub.endpoint, cache: cached ? directoryCache(temp()) : false, chunkBytes: 1 << 20, parallel: 2 };
    expect(await greedyIds({ model: 'hf:lithe/tiny-brown', download })).toEqual(reference);
    expect(hub.cut.times).toBe(0);
    // Each cut request was asked again from the byte after the last one it got.
    const starts = hub.requests.filter((r) => r.path.endsWith('/model.safetensors') && r.range).map((r) => Number(/^bytes=(\d+)-/.exec(r.range!)![1]));
    const cutAt = hub.requests.filter((r) => r.path.endsWith('/model.safetensors') && r.status === -1).map((r) => Number(/^bytes=(\d+)-/.exec(r.range!)![1]));
    expect(cutAt).toHaveLength(2);
    for (const s of cutAt) expect(starts).toContain(s + 300001);
    if (cached) expect(hub.bytesServed.get('model.safetensors')).toBe(WEIGHTS);
  });

  it('a download that gave up mid-chunk (as a killed process would) resumes from the stored chunks: only the cut chunk is sent twice', async () => {
    hub.cut = { suffix: 'model.safetensors', afterBytes: 300001, times: 1 };
    const download = { endpoint: hub.endpoint, cache: directoryCache(temp()), chunkBytes: 1 << 20, parallel: 2, attempts: 1 };
    await expect(openModel('hf:lithe/tiny-brown', download)).rejects.toThrow(/download into .* stopped: .*model\.safetensors: reading bytes \d+-\d+ failed after 1 dropped connection/);
    expect(await greedyIds({ model: 'hf:lithe/tiny-brown', download })).toEqual(reference);
    expect(hub.bytesServed.get('model.safetensors')).toBe(WEIGHTS + 300001);
  });

  it('a file replaced on the server between a drop and its resume is an error, not two versions stitched', async () => {
    hub.cut = { suffix: 'model.safetensors', afterBytes: 4096, times: 1 };
    // The new upload lands while the connection is down.
    const fetchChanging: typeof fetch = (input, init) => {
      if (hub.cut?.times === 0) hub.options.etagSalt = 'new';
      return fetch(input, init);
    };
    const download = { endpoint: hub.endpoint, cache: directoryCache(temp()), chunkBytes: 1 << 20, parallel: 1, fetch: fetchChanging };
    await expect(openModel('hf:lithe/tiny-brown', download)).rejects.toThrow(/model\.safetensors: the file changed on the server while it was read \(ETag ".*", now ".*new"\); load the model again/);
  });

  it('progress events count files as well as bytes, the shards an index names from the start', async () => {
    const events: DownloadProgress[] = [];
    const download = { endpoint: hub.endpoint, cache: directoryCache(temp()), chunkBytes: 1 << 20, onDownloadProgress: (p: DownloadProgress) => events.push(p) };
    expect(await greedyIds({ model: 'hf:lithe/tiny-brown-sharded', download })).toEqual(reference);
    const shardEvents = events.filter((e) => e.url.includes('-of-00002.safetensors'));
    expect(shardEvents.length).toBeGreaterThan(2);
    // Both shards are known before the first shard byte is stored.
    expect(events.indexOf(shardEvents[0])).toBeGreaterThan(0);
    expect(shardEvents.every((e) => e.filesTotal === shardEvents[0].filesTotal)).toBe(true);
    const last = events.at(-1)!;
    const files = new Set(events.map((e) => e.url)).size;
    expect(last).toMatchObject({ filesDone: files, filesTotal: files, loadedBytes: last.totalBytes });
    expect(files).toBeGreaterThanOrEqual(6);
    for (let i = 1; i < events.length; i++) {
      expect(events[i].loadedBytes).toBeGreaterThanOrEqual(events[i - 1].loadedBytes);
      expect(events[i].filesDone).toBeGreaterThanOrEqual(events[i - 1].filesDone);
    }
    // From the cache, every file is done at once.
    const again: DownloadProgress[] = [];
    expect(await greedyIds({ model: 'hf:lithe/tiny-brown-sharded', download: { ...download, onDownloadProgress: (p: DownloadProgress) => again.push(p) } })).toEqual(reference);
    expect(again.every((e) => e.fileLoadedBytes === e.fileTotalBytes)).toBe(true);
    expect(again.at(-1)).toMatchObject({ filesDone: files, filesTotal: files, loadedBytes: last.totalBytes, totalBytes: last.totalBytes });
  });
});
