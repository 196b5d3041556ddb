import { open, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import type { ByteSource } from '../io/byte-source.js';
import type { CachedFileMeta, CacheWriter } from './types.js';

/** Node: a download in progress as a partial file and a JSON record of its written chunks. */

export async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** Same file: same size and, where both know it, the same ETag. */
export const sameFile = (a: CachedFileMeta, b: CachedFileMeta) => a.size === b.size && (a.etag === null || b.etag === null || a.etag === b.etag);

/**
 * A writer into `partial` (its record in `partial.json`) that resumes the chunks a previous writer
 * of the same file and chunk size left there. `commit` renames it to `path`, drops the record, and
 * returns what `finish` opens.
 */
export async function partialFileWriter(partial: string, path: string, meta: CachedFileMeta, chunkBytes: number, finish: () => Promise<ByteSource>): Promise<CacheWriter> {
  type Progress = CachedFileMeta & { chunkBytes: number; done: number[] };
  const before = await readJson<Progress>(`${partial}.json`);
  const resume = before && sameFile(before, meta) && before.chunkBytes === chunkBytes;
  const done = new Set<number>(resume ? before.done : []);
  let handle: FileHandle | null = resume ? await open(partial, 'r+').catch(() => null) : null;
  if (!handle) {
    done.clear();
    handle = await open(partial, 'w');
  }
  const file = handle;
  let saving = Promise.resolve();
  // The record of written chunks follows the writes; a crash loses at most the chunks in flight.
  const save = () => (saving = saving.then(() => writeFile(`${partial}.json`, JSON.stringify({ size: meta.size, etag: meta.etag, chunkBytes, done: [...done] }))));
  await save();
  return {
    done,
    async write(offset, bytes) {
      await file.write(bytes, 0, bytes.length, offset);
      done.add(offset);
      await save();
    },
    async commit() {
      await saving;
      await file.close();
      await rename(partial, path);
      await rm(`${partial}.json`, { force: true });
      return finish();
    },
    async abandon() {
      await saving;
      await file.close();
    },
  };
}
