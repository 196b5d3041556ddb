import { blobByteSource, type ByteSource } from '../io/byte-source.js';
import type { CachedFileMeta, CacheWriter, FileCache } from './types.js';

/**
 * Browsers: a cache in the origin private file system (OPFS). Each URL is a directory named by the
 * SHA-256 of the URL, holding one file per downloaded chunk (named by its offset) and
 * `entry.json` once all are stored. A chunk file is written and closed at once, so what an
 * interrupted download stored survives a closed tab, and the next download of the same file
 * (same size and ETag, `pending.json`) fetches only the chunks missing. The stored file is a Blob
 * over the chunk files, read lazily like any File: no copy is made.
 */

interface Writable {
  write(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
}
interface FileHandle {
  getFile(): Promise<Blob>;
  createWritable(): Promise<Writable>;
}
interface DirHandle {
  getDirectoryHandle(name: string, opts?: { create?: boolean }): Promise<DirHandle>;
  getFileHandle(name: string, opts?: { create?: boolean }): Promise<FileHandle>;
  removeEntry(name: string, opts?: { recursive?: boolean }): Promise<void>;
  keys(): AsyncIterable<string>;
}

interface EntryMeta extends CachedFileMeta {
  url: string;
  chunkBytes: number;
}

const ENTRY = 'entry.json';
const PENDING = 'pending.json';

async function sha256Hex(text: string): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function readJson<T>(dir: DirHandle, name: string): Promise<T | null> {
  try {
    return JSON.parse(await (await (await dir.getFileHandle(name)).getFile()).text()) as T;
  } catch {
    return null;
  }
}

async function writeFile(dir: DirHandle, name: string, data: Uint8Array): Promise<void> {
  const out = await (await dir.getFileHandle(name, { create: true })).createWritable();
  await out.write(data);
  await out.close();
}

const chunkName = (offset: number) => String(offset);
const chunkLength = (meta: EntryMeta, offset: number) => Math.min(meta.chunkBytes, meta.size - offset);
const same = (a: CachedFileMeta, b: CachedFileMeta) => a.size === b.size && (a.etag === null || b.etag === null || a.etag === b.etag);

/** The chunk files of an entry in order, each its full length, or null if one is missing or short. */
async function chunkFiles(dir: DirHandle, meta: EntryMeta): Promise<Blob[] | null> {
  const parts: Blob[] = [];
  for (let a = 0; a < meta.size; a += meta.chunkBytes) {
    const file = await dir
      .getFileHandle(chunkName(a))
      .then((h) => h.getFile())
      .catch(() => null);
    if (!file || file.size !== chunkLength(meta, a)) return null;
    parts.push(file);
  }
  return parts;
}

/** Whether this browser offers OPFS with writable files (Chromium, Firefox; not Safari before 26). */
export function hasOpfs(): boolean {
  const g = globalThis as { navigator?: { storage?: { getDirectory?: unknown } }; FileSystemFileHandle?: { prototype: object } };
  return typeof g.navigator?.storage?.getDirectory === 'function' && !!g.FileSystemFileHandle && 'createWritable' in g.FileSystemFileHandle.prototype;
}

/** A cache in the directory `name` of the origin private file system, or null where there is none. */
export function opfsCache(name = 'lithe-models'): FileCache | null {
  if (!hasOpfs()) return null;
  const storage = (globalThis as unknown as { navigator: { storage: { getDirectory(): Promise<DirHandle> } } }).navigator.storage;
  const root = async () => (await storage.getDirectory()).getDirectoryHandle(name, { create: true });
  const entryDir = async (url: string, create: boolean) => (await root()).getDirectoryHandle(await sha256Hex(url), { create });

  return {
    description: `the origin private file system (directory '${name}')`,
    async open(url, expect): Promise<ByteSource | null> {
      const dir = await entryDir(url, false).catch(() => null);
      const meta = dir && (await readJson<EntryMeta>(dir, ENTRY));
      if (!dir || !meta || meta.url !== url || (expect && !same(meta, expect))) return null;
      const parts = await chunkFiles(dir, meta);
      return parts ? blobByteSource(url, new Blob(parts)) : null;
    },
    async writer(url, info, chunkBytes): Promise<CacheWriter> {
      const meta: EntryMeta = { url, size: info.size, etag: info.etag, chunkBytes };
      const key = await sha256Hex(url);
      let dir = await (await root()).getDirectoryHandle(key, { create: true });
      const before = await readJson<EntryMeta>(dir, PENDING);
      const done = new Set<number>();
      if (before && before.url === url && same(before, meta) && before.chunkBytes === chunkBytes) {
        for await (const file of dir.keys()) {
          const a = Number(file);
          if (!/^\d+$/.test(file) || a % chunkBytes !== 0 || a >= meta.size) continue;
          const size = await dir
            .getFileHandle(file)
            .then(async (h) => (await h.getFile()).size)
            .catch(() => -1);
          if (size === chunkLength(meta, a)) done.add(a);
        }
      } else {
        // Another version of the file (or a stale entry): start over.
        await (await root()).removeEntry(key, { recursive: true }).catch(() => {});
        dir = await (await root()).getDirectoryHandle(key, { create: true });
        await writeFile(dir, PENDING, new TextEncoder().encode(JSON.stringify(meta)));
      }
      const entry = dir;
      return {
        done,
        async write(offset, bytes) {
          await writeFile(entry, chunkName(offset), bytes);
          done.add(offset);
        },
        async commit() {
          const parts = await chunkFiles(entry, meta);
          if (!parts) throw new Error(`${url}: a chunk went missing from the origin private file system before the download finished (the site's storage was cleared?); load the model again`);
          await writeFile(entry, ENTRY, new TextEncoder().encode(JSON.stringify(meta)));
          await entry.removeEntry(PENDING).catch(() => {});
          return blobByteSource(url, new Blob(parts));
        },
        async abandon() {},
      };
    },
  };
}
