import { blobByteSource } from '../io/byte-source.js';
import { opfsCache } from './opfs-cache.browser.js';
import type { CachePlatform, CacheWriter, FileCache } from './types.js';

/**
 * Browsers: the origin private file system where it has writable files (`opfsCache`: resumable,
 * chunk by chunk), else the Cache API (cache 'lithe-models'), one entry per file URL with its size
 * and ETag in headers. A Cache API download is held in memory until complete, so an interrupted
 * one starts over (a connection dropped mid-chunk still resumes at its byte).
 */

export { opfsCache, hasOpfs } from './opfs-cache.browser.js';

interface CacheStorageLike {
  open(name: string): Promise<{ match(url: string): Promise<Response | undefined>; put(url: string, res: Response): Promise<void> }>;
}

export function cacheApiCache(name = 'lithe-models'): FileCache | null {
  const storage = (globalThis as { caches?: CacheStorageLike }).caches;
  if (!storage) return null;
  return {
    description: `the Cache API (cache '${name}')`,
    async open(url, expect) {
      const res = await (await storage.open(name)).match(url);
      if (!res) return null;
      const size = Number(res.headers.get('x-lithe-size'));
      const etag = res.headers.get('x-lithe-etag') || null;
      if (expect && (expect.size !== size || (expect.etag !== null && etag !== null && expect.etag !== etag))) return null;
      const blob = await res.blob();
      return blob.size === size ? blobByteSource(url, blob) : null;
    },
    async writer(url, meta): Promise<CacheWriter> {
      const bytes = new Uint8Array(meta.size);
      return {
        done: new Set(),
        async write(offset, chunk) {
          bytes.set(chunk, offset);
        },
        async commit() {
          const headers = { 'content-type': 'application/octet-stream', 'x-lithe-size': String(meta.size), 'x-lithe-etag': meta.etag ?? '' };
          const blob = new Blob([bytes]);
          await (await storage.open(name)).put(url, new Response(blob, { headers }));
          return blobByteSource(url, blob);
        },
        async abandon() {},
      };
    },
  };
}

export const cachePlatform: CachePlatform = {
  defaultCache: () => opfsCache() ?? cacheApiCache(),
  hubCache: () => opfsCache() ?? cacheApiCache(),
  env: () => undefined,
};
