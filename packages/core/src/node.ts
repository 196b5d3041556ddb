// Node-only helpers: model directories and files on disk.
export { nodeModelFiles } from './io/node-model-files.js';
export { openFileSource } from './io/node-file-source.js';
export { loadChatTemplateOption } from './io/node-chat-template.js';
export { directoryCache, cacheDirectory } from './platform/file-cache.js';
export { writeSafetensorsFile, type SafetensorsEntry } from './io/node-safetensors-writer.js';
