import { mkdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { openFileSource } from '../io/node-file-source.js';
import type { ByteSource } from '../io/byte-source.js';
import { partialFileWriter } from './partial-file.js';
import type { CachedFileMeta, CacheWriter, FileCache } from './types.js';

/**
 * Node: the Hugging Face cache layout that huggingface_hub reads and writes, so either reuses the
 * other's downloads. `$HF_HUB_CACHE` (else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`) holds
 * `models--{owner}--{repo}/blobs/{etag}` (the bytes, named by the file's X-Linked-Etag or ETag),
 * `snapshots/{commit}/{file}` (a relative symlink to the blob) and `refs/{revision}` (the commit).
 * A download in progress is `blobs/{etag}.lithe-incomplete` plus `.json` (the chunks written): not
 * huggingface_hub's `.incomplete`, which it resumes by length and so would misread parallel chunks.
 * URLs not in the Hub's `/{owner}/{repo}/resolve/{revision}/{file}` layout go to `fallback`.
 */

const env = (name: string): string | undefined => process.env[name] || undefined;

export function hubCacheDirectory(): string {
  return env('HF_HUB_CACHE') ?? join(env('HF_HOME') ?? join(env('XDG_CACHE_HOME') ?? join(homedir(), '.cache'), 'huggingface'), 'hub');
}

interface HubPath {
  repoDir: string;
  revision: string;
  file: string;
}

function hubPath(root: string, url: string): HubPath | null {
  const m = /\/([^/]+)\/([^/]+)\/resolve\/([^/]+)\/([^/?#]+)$/.exec(new URL(url).pathname);
  if (!m) return null;
  const [owner, repo, revision, file] = m.slice(1).map(decodeURIComponent);
  if ([owner, repo, file].some((s) => s.includes('/') || s.startsWith('.'))) return null;
  return { repoDir: join(root, `models--${owner}--${repo}`), revision, file };
}

/** A blob's name: the ETag without quotes or a weak prefix, as huggingface_hub names it. */
const blobName = (etag: string): string => etag.replace(/^W\//, '').replace(/^"|"$/g, '');
const isCommit = (s: string) => /^[0-9a-f]{40}$/.test(s);
const safeName = (s: string) => /^[\w.-]+$/.test(s) && !s.startsWith('.');

async function sizeOf(path: string): Promise<number | null> {
  return stat(path).then((s) => (s.isFile() ? s.size : null), () => null);
}

/** Links `snapshots/{commit}/{file}` to the blob and records the revision's commit. */
async function linkSnapshot(p: HubPath, commit: string, blob: string): Promise<void> {
  const link = join(p.repoDir, 'snapshots', commit, p.file);
  await mkdir(dirname(link), { recursive: true });
  const target = join('..', '..', 'blobs', blob);
  if ((await readlink(link).catch(() => null)) !== target) {
    await rm(link, { force: true });
    await symlink(target, link);
  }
  if (p.revision !== commit && safeName(p.revision)) {
    await mkdir(join(p.repoDir, 'refs'), { recursive: true });
    await writeFile(join(p.repoDir, 'refs', p.revision), commit);
  }
}

export function hubDirectoryCache(root: string, fallback: FileCache | null): FileCache {
  /** The names a Hub file is kept under, or null when the server did not say them. */
  const names = (p: HubPath, meta: CachedFileMeta) => {
    const blob = meta.blob ?? meta.etag;
    if (!blob || !meta.commit || !isCommit(meta.commit) || !safeName(blobName(blob))) return null;
    return { blob: blobName(blob), commit: meta.commit, path: join(p.repoDir, 'blobs', blobName(blob)) };
  };
  return {
    description: root,
    async open(url, expect): Promise<ByteSource | null> {
      const p = hubPath(root, url);
      if (!p) return fallback ? fallback.open(url, expect) : null;
      if (expect) {
        const n = names(p, expect);
        if (!n) return fallback ? fallback.open(url, expect) : null;
        if ((await sizeOf(n.path)) !== expect.size) return null;
        await linkSnapshot(p, n.commit, n.blob);
        return openFileSource(n.path);
      }
      // Offline: the revision's commit from refs/ (or the revision is one), then its snapshot.
      const commit = isCommit(p.revision) ? p.revision : (await readFile(join(p.repoDir, 'refs', p.revision), 'utf8').catch(() => '')).trim();
      const path = isCommit(commit) ? join(p.repoDir, 'snapshots', commit, p.file) : null;
      if (path && (await sizeOf(path)) !== null) return openFileSource(path);
      return fallback ? fallback.open(url, null) : null;
    },
    async writer(url, meta, chunkBytes): Promise<CacheWriter> {
      const p = hubPath(root, url);
      const n = p && names(p, meta);
      if (!p || !n) {
        if (!fallback) throw new Error(`${url}: the server named no commit and ETag for it, so it cannot be kept in ${root}`);
        return fallback.writer(url, meta, chunkBytes);
      }
      await mkdir(dirname(n.path), { recursive: true });
      return partialFileWriter(`${n.path}.lithe-incomplete`, n.path, meta, chunkBytes, async () => {
        await linkSnapshot(p, n.commit, n.blob);
        return openFileSource(n.path);
      });
    },
  };
}
