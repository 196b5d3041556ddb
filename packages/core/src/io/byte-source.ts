/**
 * Random-access bytes: a Node file, a browser Blob/File or an in-memory buffer. Loaders read
 * through this so the same parser runs everywhere and only touches the ranges it needs.
 * This file must stay free of Node imports (it is part of the browser build).
 */
export interface ByteSource {
  /** Shown in error messages: a file path, a URL or a file name. */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Reads exactly `length` bytes starting at `offset`; a range outside `[0, size]` is an error.
   * With `into` (at least `length` bytes long) the bytes land there and `into.subarray(0, length)`
   * is returned, so callers can reuse one buffer. Without it the result may be a view of memory
   * the source owns (see `memoryByteSource`): treat it as read-only.
   */
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /** Releases the underlying handle; safe to call more than once. */
  close?(): Promise<void>;
}

/** Throws unless `[offset, offset + length)` lies inside a source of `size` bytes and fits `into`. */
export function checkReadRange(
  name: string,
  size: number,
  offset: number,
  length: number,
  into?: Uint8Array,
): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`${name}: invalid read of ${length} bytes at offset ${offset}`);
  }
  if (offset + length > size) {
    throw new RangeError(
      `${name}: read of ${length} bytes at offset ${offset} goes past the end (size ${size} bytes)`,
    );
  }
  if (into && into.length < length) {
    throw new RangeError(`${name}: destination buffer holds ${into.length} bytes, need ${length}`);
  }
}

/** A source over bytes already in memory. Reads without `into` return views, not copies. */
export function memoryByteSource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: bytes.length,
    async read(offset, length, into) {
      checkReadRange(name, bytes.length, offset, length, into);
      const view = bytes.subarray(offset, offset + length);
      if (!into) return view;
      into.set(view);
      return into.subarray(0, length);
    },
  };
}

/** A source over a Blob or File (browsers, and Node 20's global Blob); reads slice lazily. */
export function blobByteSource(name: string, blob: Blob): ByteSource {
  return {
    name,
    size: blob.size,
    async read(offset, length, into) {
      checkReadRange(name, blob.size, offset, length, into);
      let buf: ArrayBuffer;
      try {
        buf = await blob.slice(offset, offset + length).arrayBuffer();
      } catch (err) {
        throw new Error(`${name}: reading ${length} bytes at offset ${offset} failed: ${errorMessage(err)}`, {
          cause: err,
        });
      }
      const bytes = new Uint8Array(buf);
      if (!into) return bytes;
      into.set(bytes);
      return into.subarray(0, length);
    },
  };
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
