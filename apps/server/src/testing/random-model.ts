/** The server tests' model: core's tiny random Llama with a chat template, that never emits EOS. */
import { MISTRAL_CHAT_TEMPLATE, tinyModel } from '@lithe/core/testing';

/** Writes the model files into `dir` (created if needed). */
export function writeRandomModel(dir: string, { seed = 1234 } = {}): void {
  tinyModel({}, 'F32', seed, { chatTemplate: MISTRAL_CHAT_TEMPLATE, neverEos: true }).write(dir);
}
