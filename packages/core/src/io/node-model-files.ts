import { statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, type ByteSource } from './byte-source.js';
import { isPlainFileName, type ModelFiles } from './hf-dir.js';
import { openFileSource } from './node-file-source.js';

/** `ModelFiles` over a directory on disk. Throws at once if `dir` is missing or not a directory. */
export function nodeModelFiles(dir: string): ModelFiles {
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ENOENT') throw new Error(`model directory ${dir} does not exist`, { cause: err });
    throw new Error(`cannot access model directory ${dir}: ${errorMessage(err)}`, { cause: err });
  }
  if (!isDir) throw new Error(`${dir} is not a directory; pass the model directory that contains config.json`);

  // Only plain names are served, so a hostile index file cannot reach outside `dir`.
  const pathOf = (name: string): string => {
    if (!isPlainFileName(name)) throw new Error(`${dir}: refusing to open '${name}': not a plain file name`);
    return join(dir, name);
  };

  return {
    location: dir,
    async has(name) {
      if (!isPlainFileName(name)) return false;
      try {
        return (await stat(pathOf(name))).isFile();
      } catch {
        return false;
      }
    },
    async readText(name) {
      const path = pathOf(name);
      try {
        return await readFile(path, 'utf8');
      } catch (err) {
        throw new Error(`${path}: cannot read file: ${errorMessage(err)}`, { cause: err });
      }
    },
    async open(name): Promise<ByteSource> {
      return openFileSource(pathOf(name));
    },
  };
}
