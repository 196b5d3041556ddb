import type { ByteSource } from './byte-source.js';
import { cachedHttpSource, downloadTracker } from './cached-download.js';
import { isPlainFileName, WEIGHTS_INDEX, type ModelFiles } from './hf-dir.js';
import { fetchWithRetry, httpByteSource, httpError, type HttpOptions } from './http-byte-source.js';
import type { FileCache } from '../platform/types.js';

export interface UrlModelOptions extends HttpOptions {
  /** Where each file is (the Hub's `resolve/{revision}/` layout, for one); default `base/name`. */
  fileUrl?: (name: string) => string;
  /** Shown in messages instead of the base URL. */
  location?: string;
  /** Keep downloaded files here and use them again while the server's size and ETag match. */
  cache?: FileCache | null;
}

/**
 * `ModelFiles` over an HF-layout directory served over HTTP: `{base}/config.json`,
 * `{base}/model.safetensors` (or the shards its index names), `{base}/tokenizer.json`, ...
 * Without a cache every read is a Range request; with one, files download once into it.
 */
export function urlModelFiles(base: string, opts: UrlModelOptions = {}): ModelFiles {
  const root = base.replace(/\/+$/, '');
  const urlOf = (name: string): string => {
    if (!isPlainFileName(name)) throw new Error(`${root}: refusing to fetch '${name}': not a plain file name`);
    return opts.fileUrl ? opts.fileUrl(name) : `${root}/${encodeURIComponent(name)}`;
  };
  const cache = opts.cache ?? null;
  // Set once a file came from the cache because the server could not be reached.
  let offline = false;
  // One tracker per model, so progress events count its files together.
  const tracker = downloadTracker(opts.onDownloadProgress);
  const open = (name: string): Promise<ByteSource> => (cache ? cachedHttpSource(urlOf(name), cache, opts, tracker) : httpByteSource(urlOf(name), opts));
  /** Once the index is read, its shards are files the download will need. */
  const expectShards = (text: string) => {
    try {
      const map = (JSON.parse(text) as { weight_map?: Record<string, unknown> }).weight_map ?? {};
      for (const shard of new Set(Object.values(map))) if (typeof shard === 'string' && isPlainFileName(shard)) tracker.expect(urlOf(shard));
    } catch {
      // A malformed index is reported by the loader, with its name.
    }
  };
  return {
    location: opts.location ?? root,
    async has(name) {
      if (!isPlainFileName(name)) return false;
      let res: Response;
      try {
        res = await fetchWithRetry(urlOf(name), { method: 'HEAD' }, opts);
      } catch (err) {
        // Offline with a cached model: what the cache holds is what there is.
        const cached = cache ? await cache.open(urlOf(name), null) : null;
        await cached?.close?.();
        if (cached) offline = true;
        if (cached || offline) return cached !== null;
        throw err;
      }
      if (res.ok) return true;
      if (res.status === 404 || res.status === 410) return false;
      // Say why rather than pretend the file is missing (a token, a server error).
      throw httpError(urlOf(name), res, 'checking whether the file exists');
    },
    async readText(name) {
      if (cache) {
        const source = await open(name);
        try {
          const text = new TextDecoder().decode(await source.read(0, source.size));
          if (name === WEIGHTS_INDEX) expectShards(text);
          return text;
        } finally {
          await source.close?.();
        }
      }
      const url = urlOf(name);
      const res = await fetchWithRetry(url, {}, opts);
      if (!res.ok) throw httpError(url, res, 'reading the file');
      return res.text();
    },
    open,
  };
}

/** Whether a model string is an http(s) URL. */
export const isHttpUrl = (s: string): boolean => /^https?:\/\//i.test(s);

/** Whether a model address names a GGUF file rather than a directory (query and fragment aside). */
export const isGGUFName = (s: string): boolean => /\.gguf$/i.test(s.replace(/[?#].*$/, ''));
