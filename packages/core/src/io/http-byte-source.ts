import { checkReadRange, errorMessage, type ByteSource } from './byte-source.js';

/**
 * Bytes over HTTP: the size from a HEAD request, every read a Range request. A large read is split
 * into chunks fetched in parallel, and a chunk whose connection fails is fetched again, so a long
 * download survives a dropped connection without starting over. Universal (fetch only).
 */

export interface HttpOptions {
  /** Extra request headers, e.g. `{ Authorization: 'Bearer hf_...' }`. */
  headers?: Record<string, string>;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** Bytes per Range request of a large read; default 8 MiB. */
  chunkBytes?: number;
  /** Range requests in flight for one read; default 4. */
  parallel?: number;
  /** Tries per request before a network error fails the read; default 3. */
  attempts?: number;
  /** Called as bytes arrive: the URL and the bytes it just received. */
  onBytes?: (url: string, bytes: number) => void;
  /** Progress of a whole-file download into a cache: the URL, bytes stored so far, the file's size. */
  onDownload?: (url: string, loadedBytes: number, totalBytes: number) => void;
  /** How a cached download asks for a file's size and ETag; default `httpFileInfo`. */
  fileInfo?: (url: string, opts: HttpOptions) => Promise<HttpFileInfo>;
  /** Progress of a model's download into a cache, over all its files (see `DownloadProgress`). */
  onDownloadProgress?: (progress: DownloadProgress) => void;
}

/**
 * Where a model's download into a cache stands. Files are those the loader has asked for so far,
 * plus every shard a `model.safetensors.index.json` names once it is read; a file found in the
 * cache counts as done with all its bytes.
 */
export interface DownloadProgress {
  /** The file this event is about. */
  url: string;
  /** Bytes of this file stored, and its size. */
  fileLoadedBytes: number;
  fileTotalBytes: number;
  /** Bytes stored over all files, and the total size of the files whose size is known yet. */
  loadedBytes: number;
  totalBytes: number;
  /** Files complete in the cache, and files known to be needed. */
  filesDone: number;
  filesTotal: number;
}

export const DEFAULT_CHUNK_BYTES = 8 << 20;

/** One request, tried again on network errors (not on HTTP errors, which say something). */
export async function fetchWithRetry(url: string, init: RequestInit, opts: HttpOptions): Promise<Response> {
  const f = opts.fetch ?? globalThis.fetch;
  if (typeof f !== 'function') throw new Error(`${url}: this platform has no fetch(); pass one as the fetch option`);
  const attempts = opts.attempts ?? 3;
  for (let i = 1; ; i++) {
    try {
      return await f(url, { ...init, headers: { ...opts.headers, ...(init.headers as Record<string, string> | undefined) } });
    } catch (err) {
      if (i >= attempts || (init.signal as AbortSignal | undefined)?.aborted) throw new Error(`${url}: request failed after ${i} tr${i === 1 ? 'y' : 'ies'}: ${errorMessage(err)}`, { cause: err });
    }
  }
}

/** An error for a response that is not 2xx, with what to do about the common ones. */
export function httpError(url: string, res: Response, what: string): Error {
  const hint = res.status === 401 || res.status === 403 ? ' (a private or gated model needs a token: pass token, or set HF_TOKEN)' : res.status === 404 ? ' (no such file at this address)' : '';
  return new Error(`${url}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''} ${what}${hint}`);
}

/** What a HEAD request tells of a file: its size and ETag (and on the Hub, its commit and blob ETag). */
export interface HttpFileInfo {
  size: number;
  etag: string | null;
  commit?: string | null;
  blob?: string | null;
}

/** The size and ETag of the resource at `url` (HEAD, else a one-byte Range GET for servers that refuse HEAD). */
export async function httpFileInfo(url: string, opts: HttpOptions = {}): Promise<HttpFileInfo> {
  const head = await fetchWithRetry(url, { method: 'HEAD' }, opts);
  const len = Number(head.headers.get('content-length') ?? NaN);
  if (head.ok && Number.isSafeInteger(len) && !head.headers.get('content-encoding')) return { size: len, etag: head.headers.get('etag') };
  if (!head.ok && head.status !== 405 && head.status !== 501) throw httpError(url, head, 'asking for its size');
  const probe = await fetchWithRetry(url, { headers: { Range: 'bytes=0-0' } }, opts);
  await probe.body?.cancel();
  const total = /\/(\d+)$/.exec(probe.headers.get('content-range') ?? '')?.[1];
  if (probe.status === 206 && total) return { size: Number(total), etag: probe.headers.get('etag') };
  if (!probe.ok) throw httpError(url, probe, 'asking for its size');
  throw new Error(`${url}: the server tells neither Content-Length nor Content-Range, so the file's size is unknown; serve it with Range support`);
}

/** Opens `url` for random-access reads. `known` skips the size request when the size (and ETag) are already known. */
export async function httpByteSource(url: string, opts: HttpOptions = {}, known?: number | HttpFileInfo): Promise<ByteSource> {
  const info = known === undefined ? await httpFileInfo(url, opts) : typeof known === 'number' ? { size: known, etag: null } : known;
  const total = info.size;
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const parallel = Math.max(1, opts.parallel ?? 4);
  const attempts = opts.attempts ?? 3;
  // Only a strong ETag says the bytes are the same; a weak one may cover a different encoding.
  const etag = info.etag && !info.etag.startsWith('W/') ? info.etag : null;

  /**
   * Fetches bytes [start, end) into `dest` (exactly that long). A connection that drops mid-body is
   * asked again for the bytes still missing only, and each answer must carry the ETag the file had
   * when it was opened, so a file replaced on the server is never stitched from two versions.
   */
  async function fetchRange(start: number, end: number, dest: Uint8Array): Promise<void> {
    let got = 0;
    for (let broken = 0; got < end - start; ) {
      const from = start + got;
      const res = await fetchWithRetry(url, { headers: { Range: `bytes=${from}-${end - 1}` } }, opts);
      const whole = res.status === 200 && from === 0 && end === total;
      if (res.status !== 206 && !whole) {
        await res.body?.cancel();
        if (res.ok) throw new Error(`${url}: the server ignored the Range request for bytes ${from}-${end - 1} (HTTP ${res.status}); serve the file with Range support (Accept-Ranges: bytes)`);
        throw httpError(url, res, `reading bytes ${from}-${end - 1}`);
      }
      const now = res.headers.get('etag');
      if (etag && now && now !== etag) {
        await res.body?.cancel();
        throw new Error(`${url}: the file changed on the server while it was read (ETag ${etag}, now ${now}); load the model again`);
      }
      try {
        got += await readBody(res, dest.subarray(got), `${url}: bytes ${from}-${end - 1}`);
      } catch (err) {
        got += (err as { got?: number }).got ?? 0;
        if ((err as { overflow?: boolean }).overflow || ++broken >= attempts) {
          throw new Error(`${url}: reading bytes ${from}-${end - 1} failed after ${broken} dropped connection${broken === 1 ? '' : 's'}: ${errorMessage(err)}`, { cause: err });
        }
        continue;
      }
      if (got < end - start && ++broken >= attempts) throw new Error(`${url}: asked for ${end - start} bytes at ${start}, got ${got} (the file changed on the server, or a proxy altered it)`);
    }
  }

  return {
    name: url,
    size: total,
    async read(offset, length, into) {
      checkReadRange(url, total, offset, length, into);
      const out = into ? into.subarray(0, length) : new Uint8Array(length);
      if (length === 0) return out;
      const chunks: [number, number][] = [];
      for (let a = offset; a < offset + length; a += chunkBytes) chunks.push([a, Math.min(offset + length, a + chunkBytes)]);
      let next = 0;
      const worker = async () => {
        while (next < chunks.length) {
          const [a, b] = chunks[next++];
          await fetchRange(a, b, out.subarray(a - offset, b - offset));
        }
      };
      await Promise.all(Array.from({ length: Math.min(parallel, chunks.length) }, worker));
      return out;
    },
  };

  /**
   * Streams a response body into `dest`, reporting bytes as they land; returns how many arrived
   * before the body ended. Bytes already copied stay there when the connection drops mid-body.
   */
  async function readBody(res: Response, dest: Uint8Array, what: string): Promise<number> {
    if (!res.body) {
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (bytes.length > dest.length) throw Object.assign(new Error(`${what}: the server sent ${bytes.length} bytes, more than the ${dest.length} asked for`), { overflow: true });
      dest.set(bytes);
      opts.onBytes?.(url, bytes.length);
      return bytes.length;
    }
    const reader = res.body.getReader();
    let n = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return n;
        if (n + value.length > dest.length) {
          await reader.cancel();
          throw Object.assign(new Error(`${what}: the server sent more bytes than the ${dest.length} asked for`), { overflow: true });
        }
        dest.set(value, n);
        n += value.length;
        opts.onBytes?.(url, value.length);
      }
    } catch (err) {
      // What arrived before the drop counts; the caller asks for the rest.
      if ((err as { overflow?: boolean }).overflow) throw err;
      throw Object.assign(new Error(errorMessage(err), { cause: err }), { got: n });
    }
  }
}
