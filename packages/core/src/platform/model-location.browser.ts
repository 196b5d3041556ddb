import { openUrl } from '../io/model-location.js';
import type { ModelLocationPlatform } from './types.js';

/** Browsers: a model string that is not an absolute URL is an address relative to the page. */
export const modelLocation: ModelLocationPlatform = {
  async openPath(path, http) {
    const base = (globalThis as { location?: { href: string } }).location?.href;
    if (!base) throw new Error(`model '${path}': a browser has no files by path; pass an absolute URL, 'hf:owner/repo', a File, a FileList or a Blob`);
    return openUrl(new URL(path, base).href, http);
  },
};
