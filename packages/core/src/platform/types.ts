/// <reference types="@webgpu/types" />
import type { ByteSource } from '../io/byte-source.js';
import type { ModelFiles } from '../io/hf-dir.js';
import type { UrlModelOptions } from '../io/url-model-files.js';

/**
 * What differs between Node and browsers. Each `platform/<name>.ts` is the Node implementation and
 * `platform/<name>.browser.ts` the browser one; the browser build (tsup.config.ts) swaps the files,
 * so universal modules import `platform/<name>.js` and never a Node built-in.
 */

export interface WorkerHandle {
  terminate(): unknown;
}

export interface ThreadsPlatform {
  /**
   * Starts a worker running `source`, a classic script that defines `function start(data, post)`;
   * calls it with `data` and a function that posts a message to the parent, and resolves once the
   * worker posts its first message.
   */
  spawnWorker(source: string, data: Record<string, unknown>): Promise<WorkerHandle>;
  /** Physical cores where the platform says, else the logical count. */
  physicalCores(): Promise<number>;
  /** Threads the wasm backend uses when none are asked for. */
  defaultThreads(): Promise<number>;
  /** Whether this thread may block in Atomics.wait (browsers forbid it on a page's main thread). */
  readonly canBlock: boolean;
}

export interface FallbackAdapter {
  adapter: GPUAdapter;
  /** How the adapter is reached, e.g. 'OpenGL ES'; null for the platform's native backend. */
  via: string | null;
  compat: boolean;
}

export interface WebGpuPlatform {
  /** False only where the platform can tell that no hardware GPU exists. */
  mayHaveHardwareGpu(): Promise<boolean>;
  /**
   * Where an adapter comes from when `navigator.gpu` offers none, or null if nowhere (browsers).
   * `dawnFlags` forces this path in Node.
   */
  readonly fallbackAdapter: ((opts: { dawnFlags?: string[]; powerPreference?: GPUPowerPreference }) => Promise<FallbackAdapter>) | null;
}

/** A model's bytes: one GGUF file, or the files of an HF-layout directory. */
export type OpenedModel = { gguf: ByteSource } | { files: ModelFiles };

export interface ModelLocationPlatform {
  /**
   * Opens a model named by a string that is not a URL: a local directory (Node) or GGUF file path.
   * Browsers have no paths; they get an error saying what to pass instead.
   */
  openPath(path: string, http: UrlModelOptions): Promise<OpenedModel>;
}

/** What a cache knows of a file: its size and, when the server sent one, its ETag. */
export interface CachedFileMeta {
  size: number;
  etag: string | null;
  /** On the Hub: the commit the revision resolved to (X-Repo-Commit). */
  commit?: string | null;
  /** On the Hub: the file's own ETag (X-Linked-Etag, before the CDN redirect), which names its blob. */
  blob?: string | null;
}

/** Writes the bytes of one file as they arrive, in any order (parallel chunks). */
export interface CacheWriter {
  /** Chunk starts (byte offsets) already stored by an earlier, interrupted download. */
  readonly done: ReadonlySet<number>;
  write(offset: number, bytes: Uint8Array): Promise<void>;
  /** All bytes are written: make the file a cache entry and open it. */
  commit(): Promise<ByteSource>;
  /** The download failed: keep what is written for a later resume where the cache can. */
  abandon(): Promise<void>;
}

/** Downloaded model files: a directory in Node, the Cache API in browsers. */
export interface FileCache {
  /** Where entries live, for messages. */
  readonly description: string;
  /** The cached file, if any; with `expect`, only if its size and ETag match. */
  open(url: string, expect: CachedFileMeta | null): Promise<ByteSource | null>;
  /** Starts storing a file; chunks are `chunkBytes` long, so a resumed download skips whole chunks. */
  writer(url: string, meta: CachedFileMeta, chunkBytes: number): Promise<CacheWriter>;
}

export interface CachePlatform {
  /** The default cache, or null where the platform has none. */
  defaultCache(): FileCache | null;
  /** The default cache of Hub downloads (Node: the Hugging Face cache layout), or null. */
  hubCache(): FileCache | null;
  /** An environment variable (Node), or undefined (browsers). */
  env(name: string): string | undefined;
}
