import { open, type FileHandle } from 'node:fs/promises';
import { checkReadRange, errorMessage, type ByteSource } from './byte-source.js';

/**
 * Opens a file for positional reads. Nothing is read up front: each `read` fetches just the
 * requested range, so multi-gigabyte weight files never have to fit in memory at once.
 */
export async function openFileSource(path: string): Promise<ByteSource> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw new Error(`${path}: cannot open file: ${describeFsError(err)}`, { cause: err });
  }
  let size: number;
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error('not a regular file');
    size = stat.size;
  } catch (err) {
    await handle.close().catch(() => {});
    throw new Error(`${path}: cannot open file: ${describeFsError(err)}`, { cause: err });
  }

  let closed = false;
  return {
    name: path,
    size,
    async read(offset, length, into) {
      checkReadRange(path, size, offset, length, into);
      if (closed) throw new Error(`${path}: read after close`);
      const out = into ? into.subarray(0, length) : new Uint8Array(length);
      // A single read may return fewer bytes than asked (large ranges, pipes); loop until full.
      let done = 0;
      while (done < length) {
        let bytesRead: number;
        try {
          ({ bytesRead } = await handle.read(out, done, length - done, offset + done));
        } catch (err) {
          throw new Error(
            `${path}: reading ${length} bytes at offset ${offset} failed: ${describeFsError(err)}`,
            { cause: err },
          );
        }
        if (bytesRead === 0) {
          throw new Error(
            `${path}: file ended at ${offset + done} bytes while reading ${length} bytes at offset ${offset}` +
              ` (was it truncated or modified while open?)`,
          );
        }
        done += bytesRead;
      }
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}

function describeFsError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory, expected a file';
  return errorMessage(err);
}
