import type { DecodeState, KVCache, LlamaModel } from '@lithe/core';
import type { Drafter, Proposal } from './drafter.js';

interface Session {
  cache: KVCache;
  /** q per drafted position, reused across steps. */
  q: Float64Array[];
  /** Leading tokens of the generation the cache does not hold: it holds tokens [offset, offset + length). */
  offset: number;
}

function argmax(p: Float64Array): number {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
  return best;
}

/**
 * Drafts with a (smaller or quantized) model of the same vocabulary, token by token on its own KV
 * cache. Each generation gets a cache from a pool, returned when the generation ends; the cache
 * catches up on whatever the target accepted since the last step in one forward.
 *
 * The draft's cache has the target cache's capacity. When the target's cache is unbounded (a
 * streaming window) the stream outgrows it: the draft then starts again on the latest half of its
 * capacity in tokens. A draft only proposes, so a shorter context costs acceptance, never exactness.
 */
export class ModelDrafter implements Drafter {
  private readonly pool: KVCache[] = [];
  private readonly sessions = new WeakMap<DecodeState, Session>();
  private readonly row: Float32Array;

  constructor(
    readonly kind: string,
    readonly model: LlamaModel,
    private readonly createCache: (capacity: number) => KVCache,
    private readonly onDispose: () => void = () => {},
  ) {
    this.row = new Float32Array(model.config.vocabSize);
  }

  private session(state: DecodeState): Session {
    let s = this.sessions.get(state);
    if (!s) {
      const capacity = state.cache.capacity;
      const i = this.pool.findIndex((c) => c.capacity >= capacity);
      const cache = i >= 0 ? this.pool.splice(i, 1)[0] : this.createCache(capacity);
      cache.reset();
      s = { cache, q: [], offset: 0 };
      this.sessions.set(state, s);
      state.onEnd(() => {
        cache.reset();
        this.pool.push(cache);
      });
    }
    return s;
  }

  async propose(state: DecodeState, k: number): Promise<Proposal> {
    const s = this.session(state);
    const { tokens } = state;
    const capacity = s.cache.capacity;
    k = Math.min(k, capacity);
    if (s.offset + s.cache.length > tokens.length - 1) s.cache.truncate(Math.max(0, tokens.length - 1 - s.offset));
    // The tokens up to the last one, then k - 1 drafts: if they would not fit, keep the latest ones.
    if (tokens.length - s.offset + k - 1 > capacity) {
      s.cache.reset();
      s.offset = tokens.length - Math.max(1, Math.min(capacity >> 1, capacity - k + 1));
    }
    // Catch up on the context the draft has not seen (the prompt at first), ending at the last token.
    let feed = tokens.slice(s.offset + s.cache.length);
    const context = [...tokens];
    const ids: number[] = [];
    const b = this.model.backend;
    for (let i = 0; i < k; i++) {
      const out = this.model.forward(Int32Array.from(feed), s.cache);
      const logits = (await b.read(out, this.row)) as Float32Array;
      s.q[i] ??= new Float64Array(this.row.length);
      const q = state.distribution(logits, context, s.q[i]);
      const d = state.greedy ? argmax(q) : state.draw(q);
      ids.push(d);
      context.push(d);
      feed = [d];
    }
    return { ids, q: s.q.slice(0, k) };
  }

  rollback(state: DecodeState, length: number): void {
    const s = this.sessions.get(state);
    if (s && s.offset + s.cache.length > length) s.cache.truncate(Math.max(0, length - s.offset));
  }

  dispose(): void {
    for (const c of this.pool.splice(0)) c.dispose();
    this.onDispose();
  }
}
