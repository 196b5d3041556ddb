import type { ByteSource } from './byte-source.js';
import { DEFAULT_CHUNK_BYTES, httpByteSource, httpFileInfo, type DownloadProgress, type HttpOptions } from './http-byte-source.js';
import type { FileCache } from '../platform/types.js';

/** Sums the progress of the files of one model into `DownloadProgress` events. */
export interface DownloadTracker {
  /** A file the model will need (a shard an index names), before it is opened. */
  expect(url: string): void;
  /** Bytes of `url` stored so far; `done` once the file is complete in the cache. */
  update(url: string, loaded: number, total: number, done: boolean): void;
}

export function downloadTracker(report: ((p: DownloadProgress) => void) | undefined): DownloadTracker {
  const files = new Map<string, { loaded: number; total: number | null; done: boolean }>();
  return {
    expect(url) {
      if (!files.has(url)) files.set(url, { loaded: 0, total: null, done: false });
    },
    update(url, loaded, total, done) {
      files.set(url, { loaded, total, done });
      if (!report) return;
      let loadedBytes = 0;
      let totalBytes = 0;
      let filesDone = 0;
      for (const f of files.values()) {
        loadedBytes += f.loaded;
        totalBytes += f.total ?? 0;
        if (f.done) filesDone++;
      }
      report({ url, fileLoadedBytes: loaded, fileTotalBytes: total, loadedBytes, totalBytes, filesDone, filesTotal: files.size });
    },
  };
}

/**
 * A file from `url` through `cache`: the cached copy when its size and ETag match what the server
 * says now; else a download in parallel Range chunks into the cache (resuming the chunks an
 * interrupted download left, where the cache keeps them), then the stored copy. A connection that
 * drops mid-chunk is resumed at the byte it stopped (see `httpByteSource`). When the server cannot
 * be asked (offline, an error), a cached copy is used as it is.
 */
export async function cachedHttpSource(url: string, cache: FileCache, opts: HttpOptions = {}, tracker = downloadTracker(opts.onDownloadProgress)): Promise<ByteSource> {
  tracker.expect(url);
  let info;
  try {
    info = await (opts.fileInfo ?? httpFileInfo)(url, opts);
  } catch (err) {
    const stale = await cache.open(url, null);
    if (stale) {
      tracker.update(url, stale.size, stale.size, true);
      return stale;
    }
    throw err;
  }
  const hit = await cache.open(url, info);
  if (hit) {
    tracker.update(url, info.size, info.size, true);
    return hit;
  }

  const remote = await httpByteSource(url, opts, { size: info.size, etag: info.etag });
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const writer = await cache.writer(url, info, chunkBytes);
  const todo: number[] = [];
  for (let a = 0; a < info.size; a += chunkBytes) if (!writer.done.has(a)) todo.push(a);
  // On a failure the other workers stop taking chunks; all settle before the writer is left.
  let failure: { err: unknown } | null = null;
  let next = 0;
  let stored = info.size - todo.reduce((n, a) => n + Math.min(chunkBytes, info.size - a), 0);
  tracker.update(url, stored, info.size, false);
  const worker = async () => {
    while (next < todo.length && !failure) {
      const a = todo[next++];
      try {
        const bytes = await remote.read(a, Math.min(chunkBytes, info.size - a));
        await writer.write(a, bytes);
        stored += bytes.length;
        opts.onDownload?.(url, stored, info.size);
        if (stored < info.size) tracker.update(url, stored, info.size, false);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, opts.parallel ?? 4), todo.length) }, worker));
  if (!failure) {
    const source = await writer.commit();
    tracker.update(url, info.size, info.size, true);
    return source;
  }
  await writer.abandon();
  const err = (failure as { err: unknown }).err;
  throw new Error(`${url}: download into ${cache.description} stopped: ${(err as Error).message}`, { cause: err });
}
