import { blobByteSource, type ByteSource } from './byte-source.js';
import type { ModelFiles } from './hf-dir.js';
import { cachedHttpSource } from './cached-download.js';
import { hubModelFiles, isHubId, resolveCache, type HubOptions } from './hf-hub.js';
import { httpByteSource } from './http-byte-source.js';
import { isGGUFName, isHttpUrl, urlModelFiles, type UrlModelOptions } from './url-model-files.js';
import { modelLocation as platform } from '../platform/model-location.js';
import type { OpenedModel } from '../platform/types.js';

/**
 * Everything a model can be named by: a path (Node) or page-relative address (browsers), an http(s)
 * URL of an HF-layout directory or a .gguf file, a Hub id (`hf:owner/repo[@revision]`), a `File`/`Blob` holding a GGUF, the files of a
 * directory (`FileList` from `<input type=file multiple webkitdirectory>` or a drop, or a `File[]`),
 * an OPFS / File System Access handle (a GGUF file or a model directory), a `ByteSource` over a
 * GGUF, or a `ModelFiles`.
 */
export type ModelInput = string | ModelFiles | ByteSource | Blob | ArrayLike<File> | FileHandleLike | DirectoryHandleLike;

/** An OPFS or File System Access file handle (`FileSystemFileHandle`): a GGUF file. */
export interface FileHandleLike {
  readonly kind: 'file';
  readonly name: string;
  getFile(): Promise<File>;
}

/** An OPFS or File System Access directory handle (`FileSystemDirectoryHandle`): a model directory. */
export interface DirectoryHandleLike {
  readonly kind: 'directory';
  readonly name: string;
  getFileHandle(name: string): Promise<FileHandleLike>;
}

const isBlob = (x: unknown): x is Blob => typeof Blob !== 'undefined' && x instanceof Blob;
const isByteSource = (x: object): x is ByteSource => 'read' in x && 'size' in x;
const isModelFiles = (x: object): x is ModelFiles => 'open' in x && 'readText' in x && 'has' in x;

/** Resolves a model input to its bytes without reading any weights. */
export async function openModelInput(model: ModelInput, opts: HubOptions = {}): Promise<OpenedModel> {
  if (typeof model === 'string') {
    if (isHubId(model)) return { files: hubModelFiles(model, opts) };
    // Plain URLs are read in place unless a cache is asked for.
    const http: UrlModelOptions = { ...opts, cache: resolveCache(opts.cache, false) };
    if (isHttpUrl(model)) return openUrl(model, http);
    return platform.openPath(model, http);
  }
  if (isBlob(model)) return { gguf: blobByteSource((model as Partial<File>).name || 'blob', model) };
  if (typeof model !== 'object' || model === null) throw new TypeError(`model must be a path, a URL, a File/Blob, a FileList or ModelFiles, got ${model === null ? 'null' : typeof model}`);
  if (isByteSource(model)) return { gguf: model };
  const kind = (model as { kind?: unknown }).kind;
  if (kind === 'file' && typeof (model as FileHandleLike).getFile === 'function') {
    const file = await (model as FileHandleLike).getFile();
    return { gguf: blobByteSource(file.name, file) };
  }
  if (kind === 'directory' && typeof (model as DirectoryHandleLike).getFileHandle === 'function') return { files: directoryHandleFiles(model as DirectoryHandleLike) };
  if (isModelFiles(model)) return { files: model };
  if (typeof (model as ArrayLike<File>).length === 'number') return fileListModel(Array.from(model as ArrayLike<File>));
  throw new TypeError('model must be a path, a URL, a File/Blob, a FileList or ModelFiles');
}

/** A URL of a .gguf file or of an HF-layout directory. */
export async function openUrl(url: string, opts: UrlModelOptions): Promise<OpenedModel> {
  if (!isGGUFName(url)) return { files: urlModelFiles(url, opts) };
  return { gguf: opts.cache ? await cachedHttpSource(url, opts.cache, opts) : await httpByteSource(url, opts) };
}

/** The display name of a model that is not a local path (a Hub repo, a URL's last segment), else null. */
export function remoteModelName(model: string): string | null {
  if (isHubId(model)) return model.replace(/^hf:(\/\/)?/i, '');
  if (!isHttpUrl(model)) return null;
  return new URL(model).pathname.split('/').filter(Boolean).pop() ?? new URL(model).host;
}

/** `ModelFiles` over a directory handle (the origin private file system, or a directory the user picked). */
export function directoryHandleFiles(dir: DirectoryHandleLike): ModelFiles {
  const file = async (name: string): Promise<File> => {
    try {
      return await (await dir.getFileHandle(name)).getFile();
    } catch (err) {
      throw new Error(`${dir.name}/${name}: cannot open the file: ${(err as Error).message}`, { cause: err });
    }
  };
  return {
    location: dir.name || 'directory',
    async has(name) {
      try {
        await dir.getFileHandle(name);
        return true;
      } catch {
        return false;
      }
    },
    readText: async (name) => (await file(name)).text(),
    open: async (name) => blobByteSource(`${dir.name}/${name}`, await file(name)),
  };
}

/** The files of a model directory picked or dropped by a user, by base name. */
export function fileListModel(list: File[]): OpenedModel {
  if (list.length === 0) throw new Error('model: the file list is empty; pick the model directory\'s files (config.json, tokenizer.json, *.safetensors) or one .gguf file');
  for (const f of list) if (!isBlob(f)) throw new TypeError('model: a file list must hold File objects');
  const byName = new Map(list.map((f) => [f.name, f]));
  const ggufs = list.filter((f) => isGGUFName(f.name));
  if (!byName.has('config.json')) {
    if (ggufs.length === 1) return { gguf: blobByteSource(ggufs[0].name, ggufs[0]) };
    throw new Error(`model: the files (${list.map((f) => f.name).join(', ')}) hold neither config.json nor exactly one .gguf file`);
  }
  // webkitRelativePath names the picked directory; fall back to the first file's name.
  const dir = (list[0] as File & { webkitRelativePath?: string }).webkitRelativePath?.split('/')[0] || 'selected files';
  const get = (name: string): File => {
    const f = byName.get(name);
    if (!f) throw new Error(`${dir}: ${name} is not among the selected files`);
    return f;
  };
  return {
    files: {
      location: dir,
      has: async (name) => byName.has(name),
      readText: async (name) => get(name).text(),
      open: async (name) => blobByteSource(`${dir}/${name}`, get(name)),
    },
  };
}
