/** The server tests' model: core's tiny random Llama with a chat template, that never emits EOS. */
import { MISTRAL_CHAT_TEMPLATE, tinyModel } from '@lithe/core/testing';

export interface RandomModelOptions {
  seed?: number;
  /** The chat template tokenizer_config.json carries (default Mistral's). */
  chatTemplate?: string;
  /** Tokens of context (config.json's max_position_embeddings; default 256). */
  context?: number;
}

/** Writes the model files into `dir` (created if needed). */
export function writeRandomModel(dir: string, { seed = 1234, chatTemplate = MISTRAL_CHAT_TEMPLATE, context }: RandomModelOptions = {}): void {
  tinyModel(context !== undefined ? { max_position_embeddings: context } : {}, 'F32', seed, { chatTemplate, neverEos: true }).write(dir);
}
