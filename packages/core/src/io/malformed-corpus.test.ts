/**
 * Every case of the generated malformed-input corpus through the loaders (createPipeline on the
 * cpu backend, as users load models), each within a time bound: a clean rejection is an Error that
 * names the file and says what is wrong; anything else (a crash such as a stack overflow or a
 * TypeError, a model that loads, a hang) fails the test.
 */
import { describe, expect, it } from 'vitest';
import { memoryByteSource } from './byte-source.js';
import { createPipeline } from '../pipeline/create-pipeline.js';
import { corpusModelFiles, malformedCorpus, type CorpusCase } from '../testing/malformed-corpus.js';

const LOCATION = 'memory:corpus';
const CASE_MS = 10_000;

type Outcome = { kind: 'clean' | 'crash' | 'loaded' | 'hang' | 'unclear'; message: string };

async function load(c: CorpusCase): Promise<Outcome> {
  const model = c.files instanceof Uint8Array ? memoryByteSource(`${LOCATION}/model.gguf`, c.files) : corpusModelFiles(LOCATION, c.files);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<Outcome>((resolve) => (timer = setTimeout(() => resolve({ kind: 'hang', message: `no answer in ${CASE_MS} ms` }), CASE_MS)));
  const attempt = (async (): Promise<Outcome> => {
    try {
      const p = await createPipeline({ model, backend: 'cpu', cacheSize: 16 });
      p.dispose();
      return { kind: 'loaded', message: 'loaded without an error' };
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      // Crashes: the engine's own errors, not ours.
      if (!(e instanceof Error) || e instanceof TypeError || /Maximum call stack|Cannot read prop|undefined is not|is not a function|out of memory/i.test(message)) return { kind: 'crash', message };
      return { kind: message.includes(LOCATION) && c.expect.test(message) ? 'clean' : 'unclear', message };
    }
  })();
  try {
    return await Promise.race([attempt, hang]);
  } finally {
    clearTimeout(timer);
  }
}

const cases = await malformedCorpus();

describe(`malformed-input corpus (${cases.length} cases)`, () => {
  const outcomes = new Map<string, Outcome>();
  const heapStart = process.memoryUsage().heapUsed;
  let heapPeak = heapStart;

  for (const c of cases) {
    it(`${c.kind}: ${c.name}`, async () => {
      const o = await load(c);
      heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
      outcomes.set(`${c.kind}: ${c.name}`, o);
      expect(o, o.message).toMatchObject({ kind: 'clean' });
    }, CASE_MS + 5_000);
  }

  it('counts: every case a clean rejection, memory bounded', () => {
    const count = (k: Outcome['kind']) => [...outcomes.values()].filter((o) => o.kind === k).length;
    const summary = { cases: cases.length, clean: count('clean'), crash: count('crash'), hang: count('hang'), loaded: count('loaded'), unclear: count('unclear') };
    const byClass = Object.fromEntries(['tokenizer.json', 'config.json', 'safetensors', 'gguf'].map((k) => [k, cases.filter((c) => c.kind === k).length]));
    console.log(`malformed corpus: ${JSON.stringify(summary)} by class ${JSON.stringify(byClass)}; heap peak +${((heapPeak - heapStart) / 2 ** 20).toFixed(0)} MiB`);
    expect(summary.clean).toBe(cases.length);
    // The cases hold a few tiny models; a loader that inflated a hostile header would show here.
    expect(heapPeak - heapStart).toBeLessThan(1024 * 2 ** 20);
  });
});
