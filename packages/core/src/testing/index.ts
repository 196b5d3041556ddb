// Test helpers shared by lithe's packages: fresh random inputs and small random models (Node only).
export { freshRng, randn, maxAbsDiff } from './random.js';
export { tinyModel, modelFromWeights, llamaTensorShapes, TINY_CONFIG, MISTRAL_CHAT_TEMPLATE, TOKENIZER_JSON, TOKENIZER_CONFIG, type TinyModel, type TinyModelOptions, type StoredDType } from './tiny-model.js';
export { referenceLinear, referenceRmsNorm } from './reference-llama.js';
export { malformedCorpus, corpusModelFiles, type CorpusCase, type CorpusClass } from './malformed-corpus.js';
export { startHubServer, type HubServer, type HubServerOptions, type HubRequest } from './hub-server.js';
