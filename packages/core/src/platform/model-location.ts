import { nodeModelFiles } from '../io/node-model-files.js';
import { openFileSource } from '../io/node-file-source.js';
import { isGGUFName } from '../io/url-model-files.js';
import type { ModelLocationPlatform } from './types.js';

/** Node: a model string that is not a URL is a path on disk, a GGUF file or an HF directory. */
export const modelLocation: ModelLocationPlatform = {
  async openPath(path) {
    return isGGUFName(path) ? { gguf: await openFileSource(path) } : { files: nodeModelFiles(path) };
  },
};
