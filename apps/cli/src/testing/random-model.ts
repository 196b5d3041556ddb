/** The CLI tests' model: core's tiny random Llama, written to a directory, that never emits EOS. */
import { MISTRAL_CHAT_TEMPLATE, TINY_CONFIG as BASE, tinyModel } from '@lithe/core/testing';

export const TINY_CONFIG = { ...BASE, max_position_embeddings: 512 };

/** Writes the model into `dir`; `chatTemplate: false` leaves the tokenizer config without one. */
export function writeRandomModel(dir: string, { seed = 1234, chatTemplate = true } = {}): void {
  tinyModel(TINY_CONFIG, 'F32', seed, {
    chatTemplate: chatTemplate ? MISTRAL_CHAT_TEMPLATE : undefined,
    generationConfig: { bos_token_id: 1, eos_token_id: 2, do_sample: true, temperature: 0.8, top_p: 0.95 },
    neverEos: true,
  }).write(dir);
}
