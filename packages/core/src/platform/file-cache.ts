import { mkdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { openFileSource } from '../io/node-file-source.js';
import { hubCacheDirectory, hubDirectoryCache } from './hub-cache.js';
import { partialFileWriter, readJson, sameFile } from './partial-file.js';
import type { CachedFileMeta, CachePlatform, CacheWriter, FileCache } from './types.js';

/**
 * Node: a cache directory, `LITHE_CACHE` or `$XDG_CACHE_HOME/lithe` or `~/.cache/lithe`. A file
 * from `https://host/a/b` is `<dir>/https/host/a/b` with `b.lithe.json` beside it (its size and
 * ETag). A download in progress is `b.incomplete` plus `b.incomplete.json` (the chunks written), so
 * an interrupted one resumes where it stopped.
 */

const env = (name: string): string | undefined => process.env[name] || undefined;

export function cacheDirectory(): string {
  return env('LITHE_CACHE') ?? join(env('XDG_CACHE_HOME') ?? join(homedir(), '.cache'), 'lithe');
}

/** The cache path of a URL: scheme, host and path segments, each made safe for a file name. */
function pathOf(root: string, url: string): string {
  const u = new URL(url);
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._@=+-]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).replace(/^\.+$/, (d) => '%2e'.repeat(d.length));
  const segments = decodeURIComponent(u.pathname).split('/').filter(Boolean).map(safe);
  if (u.search) segments.push(`${segments.pop() ?? ''}${safe(u.search)}`);
  return join(root, u.protocol.replace(':', ''), safe(u.host), ...segments);
}


export function directoryCache(root: string): FileCache {
  return {
    description: root,
    async open(url, expect) {
      const path = pathOf(root, url);
      const meta = await readJson<CachedFileMeta>(`${path}.lithe.json`);
      if (!meta || (expect && !sameFile(meta, expect))) return null;
      const source = await openFileSource(path).catch(() => null);
      if (source && source.size !== meta.size) {
        await source.close?.();
        return null;
      }
      return source;
    },
    async writer(url, meta, chunkBytes): Promise<CacheWriter> {
      const path = pathOf(root, url);
      await mkdir(dirname(path), { recursive: true });
      return partialFileWriter(`${path}.incomplete`, path, meta, chunkBytes, async () => {
        await writeFile(`${path}.lithe.json`, JSON.stringify({ size: meta.size, etag: meta.etag, url }));
        return openFileSource(path);
      });
    },
  };
}

export const cachePlatform: CachePlatform = {
  defaultCache() {
    const dir = cacheDirectory();
    try {
      mkdirSync(dir, { recursive: true });
    } catch {
      return null;
    }
    return directoryCache(dir);
  },
  hubCache() {
    // LITHE_CACHE set: everything goes to lithe's own directory, as before.
    if (env('LITHE_CACHE')) return cachePlatform.defaultCache();
    const dir = hubCacheDirectory();
    try {
      mkdirSync(dir, { recursive: true });
    } catch {
      return cachePlatform.defaultCache();
    }
    return hubDirectoryCache(dir, cachePlatform.defaultCache());
  },
  env,
};
