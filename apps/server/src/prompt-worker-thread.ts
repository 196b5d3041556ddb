/**
 * The prompt worker thread: renders chat templates and tokenizes prompts off the server's event
 * loop, one job at a time. Its tokenizer is built from the model's own files with the options of
 * the pipeline's tokenizer, so its token ids are the pipeline's (the server checks on start).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createTokenizer, openModel, renderChatTemplate, type LitheTokenizer } from '@lithe/core';
import type { Job, Reply, ThreadData } from './prompt-worker-protocol.js';
import { plainText } from './special-literals.js';

const port = parentPort!;
const data = workerData as ThreadData;
const post = (m: Reply, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

async function loadTokenizer(): Promise<LitheTokenizer | null> {
  if (data.model === null) return null;
  const parts = await openModel(data.model);
  try {
    if (!parts.tokenizerJson) throw new Error(`${parts.location}: tokenizer.json is missing`);
    return createTokenizer(parts.tokenizerJson, parts.tokenizerConfig ?? {}, data.tokenizer);
  } finally {
    await parts.close();
  }
}

function run(tokenizer: LitheTokenizer | null, job: Job): void {
  if (job.kind === 'encode') {
    const ids = Int32Array.from(tokenizer!.encode(job.text));
    return post({ id: job.id, ids }, [ids.buffer]);
  }
  const messages = job.kind === 'chat' ? job.messages.map((m) => ({ role: m.role, content: plainText(tokenizer!, m.content) })) : job.messages;
  post({ id: job.id, phase: 'render' });
  const text = renderChatTemplate(job.template, messages, job.options);
  post({ id: job.id, phase: 'rendered' });
  if (job.kind === 'render') return post({ id: job.id, text });
  // A template can write far more than it was given: the same bound as the messages had.
  if (text.length > job.maxChars) return post({ id: job.id, tooLong: text.length });
  // The template writes the BOS itself.
  const ids = Int32Array.from(tokenizer!.encode(text, { addSpecialTokens: false }));
  post({ id: job.id, ids }, [ids.buffer]);
}

loadTokenizer().then(
  (tokenizer) => {
    port.on('message', (job: Job) => {
      try {
        run(tokenizer, job);
      } catch (e) {
        post({ id: job.id, error: message(e) });
      }
    });
    post({ ready: true, encodes: tokenizer !== null });
  },
  (e: unknown) => post({ startupError: message(e) }),
);
