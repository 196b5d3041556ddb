import type { KVCache } from '../kv-cache/kv-cache.js';

/** A cache handed out for one generation, with how many leading prompt tokens it already holds. */
export interface PooledCache {
  cache: KVCache;
  /** Leading tokens of the prompt whose keys and values the cache holds (0 for a fresh one). */
  cachedTokens: number;
}

/** A cached prefix this short is not worth taking a cache over for (it is nearly every BOS). */
export const MIN_PREFIX_TOKENS = 4;

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * The KV caches of one pipeline, preallocated and reused, with prefix caching: a cache given back
 * after a generation keeps its keys and values and the token ids they are for, and the next prompt
 * that starts with those tokens (the next turn of a chat, a shared system prompt) takes that cache,
 * rolled back to the common prefix, and prefills only the rest; a prefix that a running
 * generation's cache holds is copied (`KVCache.copyPrefix`, where the cache kind has it) into a
 * cache of the new generation's own. Idle caches are reused least
 * recently used first; at most `maxCaches` are held (running and idle), the rest are disposed.
 * A cache that evicts (`unbounded`) holds no reusable prefix and is reset instead.
 */
export class KVCachePool {
  /** Idle caches, least recently used first, with the tokens each holds. */
  private readonly idle: { cache: KVCache; tokens: number[] }[] = [];
  private readonly all = new Set<KVCache>();
  /** Caches generations hold now, with the prompt each was acquired for. */
  private readonly busy = new Map<KVCache, readonly number[]>();
  /** Whether idle caches keep their prefixes for reuse (default true). */
  prefixCaching = true;
  /**
   * Most caches held, running and idle together (default: as many as ever ran at once). Above the
   * generations running, the rest are idle caches that keep prefixes for reuse.
   */
  maxCaches = Infinity;

  constructor(private readonly create: (capacity: number) => KVCache) {}

  /** Caches held now (running and idle). */
  get size(): number {
    return this.all.size;
  }

  /** Bytes of every cache held, idle ones (kept for their prefixes) included. */
  get bytes(): number {
    let n = 0;
    for (const c of this.all) n += c.bytes;
    return n;
  }

  /** Bytes of the caches that generations hold now. */
  get bytesInUse(): number {
    const idle = new Set(this.idle.map((e) => e.cache));
    let n = 0;
    for (const c of this.all) if (!idle.has(c)) n += c.bytes;
    return n;
  }

  /**
   * A cache of at least `capacity` tokens for a generation over `prompt`: the idle one holding the
   * longest prefix of it (rolled back to that prefix, and never the whole prompt: the last token
   * must run to give logits); or, when a running generation's cache holds a longer one, a fresh
   * cache with that prefix copied in; else an empty idle one, else a new one while under
   * `maxCaches`, else the least recently used.
   */
  acquire(capacity: number, prompt: readonly number[] = []): PooledCache {
    const fits = (c: KVCache) => c.capacity >= capacity || c.unbounded === true;
    let best = -1;
    let bestLength = 0;
    if (this.prefixCaching && prompt.length > 1) {
      this.idle.forEach((e, i) => {
        const n = Math.min(commonPrefix(e.tokens, prompt), prompt.length - 1);
        if (n >= MIN_PREFIX_TOKENS && n > bestLength && fits(e.cache)) [best, bestLength] = [i, n];
      });
    }
    // A running generation's cache may hold a longer prefix (a system prompt shared by requests
    // running together): it stays with its generation, and a copy of the prefix goes into a cache of our own.
    let shared: KVCache | null = null;
    let sharedLength = bestLength;
    if (this.prefixCaching && prompt.length > 1) {
      for (const [cache, tokens] of this.busy) {
        const n = Math.min(commonPrefix(tokens, prompt), prompt.length - 1, cache.length);
        if (n >= MIN_PREFIX_TOKENS && n > sharedLength && cache.copyPrefix && !cache.unbounded) [shared, sharedLength] = [cache, n];
      }
    }
    if (best >= 0 && !shared) {
      const { cache } = this.idle.splice(best, 1)[0];
      cache.truncate(bestLength);
      return this.lend(cache, prompt, bestLength);
    }
    const got = this.fresh(capacity, fits);
    if (shared && got.copyPrefix?.(shared, sharedLength)) return this.lend(got, prompt, sharedLength);
    return this.lend(got, prompt, 0);
  }

  /** An empty cache: an idle one holding no prefix, else a new one while under `maxCaches`, else the least recently used. */
  private fresh(capacity: number, fits: (c: KVCache) => boolean): KVCache {
    const empty = this.idle.findIndex((e) => e.tokens.length === 0 && fits(e.cache));
    // Idle caches hold prefixes other prompts may want: make a new one while there is room.
    const keepPrefixes = this.prefixCaching && this.maxCaches !== Infinity && this.all.size < this.maxCaches;
    const lru = empty >= 0 ? empty : keepPrefixes ? -1 : this.idle.findIndex((e) => fits(e.cache));
    if (lru >= 0) {
      const { cache } = this.idle.splice(lru, 1)[0];
      cache.reset();
      return cache;
    }
    const cache = this.create(capacity);
    this.all.add(cache);
    this.trim();
    return cache;
  }

  private lend(cache: KVCache, prompt: readonly number[], cachedTokens: number): PooledCache {
    this.busy.set(cache, prompt);
    return { cache, cachedTokens };
  }

  /**
   * Gives a cache back. `tokens` are the ids its keys and values are for (prompt and completion),
   * when the generation ended cleanly; without them (an error mid-step) the cache is reset.
   */
  release(cache: KVCache, tokens?: readonly number[]): void {
    if (!this.all.has(cache)) return;
    this.busy.delete(cache);
    let held: number[] = [];
    if (this.prefixCaching && tokens && !cache.unbounded) {
      // A step may have run tokens past those emitted (speculative drafts kept at a stop): drop them.
      const n = Math.min(cache.length, tokens.length);
      cache.truncate(n);
      held = tokens.slice(0, n);
    } else cache.reset();
    this.idle.push({ cache, tokens: held });
    this.trim();
  }

  /** Disposes idle caches, least recently used first, while more than `maxCaches` are held. */
  trim(): void {
    while (this.all.size > this.maxCaches && this.idle.length > 0) {
      const { cache } = this.idle.shift()!;
      this.all.delete(cache);
      cache.dispose();
    }
  }

  /** Forgets every kept prefix (the caches stay, reset). */
  clearPrefixes(): void {
    for (const e of this.idle) {
      e.cache.reset();
      e.tokens = [];
    }
  }

  dispose(): void {
    for (const c of this.all) c.dispose();
    this.all.clear();
    this.busy.clear();
    this.idle.length = 0;
  }
}
