// Node-only helpers: model directories and files on disk.
export { nodeModelFiles } from './io/node-model-files.js';
export { openFileSource } from './io/node-file-source.js';
