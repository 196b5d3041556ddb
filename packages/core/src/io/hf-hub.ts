import type { ModelFiles } from './hf-dir.js';
import { fetchWithRetry, httpFileInfo, type HttpFileInfo, type HttpOptions } from './http-byte-source.js';
import { urlModelFiles } from './url-model-files.js';
import { cachePlatform } from '../platform/file-cache.js';
import type { FileCache } from '../platform/types.js';

/**
 * Models on the Hugging Face Hub (or a server with its URL layout): `hf:owner/repo` or
 * `hf:owner/repo@revision` reads `{endpoint}/{owner}/{repo}/resolve/{revision}/{file}`.
 */

export interface HubOptions extends HttpOptions {
  /** Default: the HF_ENDPOINT environment variable (Node), else https://huggingface.co. */
  endpoint?: string;
  /** An access token for private and gated models; default HF_TOKEN (Node). Sent as `Authorization: Bearer`. */
  token?: string;
  /**
   * Where downloads are kept: a `FileCache`, `false` for none, or (default) the platform's: in Node
   * the Hugging Face cache (HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub; shared
   * with huggingface_hub) for `hf:` ids and lithe's directory (LITHE_CACHE, else
   * $XDG_CACHE_HOME/lithe or ~/.cache/lithe) for URLs, or lithe's for both when LITHE_CACHE is set;
   * in browsers the origin private file system where it has writable files, else the Cache API.
   */
  cache?: FileCache | boolean;
}

export interface HubId {
  repo: string;
  revision: string;
}

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

export const isHubId = (s: string): boolean => /^hf:/i.test(s);

/** Parses `hf:owner/repo[@revision]`; the revision defaults to 'main'. */
export function parseHubId(id: string): HubId {
  const m = /^hf:(?:\/\/)?([A-Za-z0-9][\w.-]*\/[\w.-]+)(?:@([^\s@]+))?$/i.exec(id.trim());
  if (!m || m[1].includes('..')) throw new Error(`'${id}' is not a Hub model id; write hf:owner/repo or hf:owner/repo@revision (a branch, tag or commit)`);
  return { repo: m[1], revision: m[2] ?? 'main' };
}

/** The cache a `cache` option names, or null for none. */
export function resolveCache(cache: FileCache | boolean | undefined, byDefault: boolean): FileCache | null {
  if (cache === false || (cache === undefined && !byDefault)) return null;
  if (cache === true || cache === undefined) return cachePlatform.defaultCache();
  return cache;
}

/**
 * A Hub file's size and ETags. The Hub answers `resolve/` with the commit (X-Repo-Commit) and the
 * file's own ETag (X-Linked-Etag), which name it in the Hugging Face cache, then redirects large
 * files to a CDN whose ETag guards the transfer; so the first answer is read without following the
 * redirect. Browsers hide a redirect's headers: there only the CDN's are known.
 */
export async function hubFileInfo(url: string, opts: HttpOptions = {}): Promise<HttpFileInfo> {
  const first = await fetchWithRetry(url, { method: 'HEAD', redirect: 'manual' }, opts);
  const commit = first.headers.get('x-repo-commit');
  const linked = first.headers.get('x-linked-etag');
  const size = Number(first.headers.get('content-length') ?? NaN);
  if (first.ok && Number.isSafeInteger(size) && !first.headers.get('content-encoding')) {
    const etag = first.headers.get('etag');
    return { size, etag, commit, blob: linked ?? etag };
  }
  const final = await httpFileInfo(url, opts);
  return { ...final, commit, blob: linked };
}

const isOffline = (v: string | undefined) => !!v && !/^(0|false|no|off)$/i.test(v);

/** `ModelFiles` of a Hub repository at a revision, downloaded through the cache. */
export function hubModelFiles(id: string, opts: HubOptions = {}): ModelFiles {
  const { repo, revision } = parseHubId(id);
  const endpoint = (opts.endpoint ?? cachePlatform.env('HF_ENDPOINT') ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, '');
  const token = opts.token ?? cachePlatform.env('HF_TOKEN');
  const headers = token ? { Authorization: `Bearer ${token}`, ...opts.headers } : opts.headers;
  const rev = encodeURIComponent(revision);
  // HF_HUB_OFFLINE, as huggingface_hub: no request at all, only what the cache holds.
  const offline: typeof fetch | undefined = isOffline(cachePlatform.env('HF_HUB_OFFLINE'))
    ? (input) => Promise.reject(new Error(`HF_HUB_OFFLINE is set, so ${String(input)} is not fetched; unset it to download`))
    : undefined;
  return urlModelFiles(`${endpoint}/${repo}`, {
    fileInfo: hubFileInfo,
    ...opts,
    ...(offline && { fetch: offline, attempts: 1 }),
    headers,
    location: `hf:${repo}@${revision}`,
    fileUrl: (name) => `${endpoint}/${repo}/resolve/${rev}/${encodeURIComponent(name)}`,
    cache: opts.cache === undefined || opts.cache === true ? cachePlatform.hubCache() : resolveCache(opts.cache, true),
  });
}
