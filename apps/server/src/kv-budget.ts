/**
 * The KV memory budget: how many bytes of KV cache the server may hold, and how many running
 * generations (each with a cache of `--cache-size` tokens, its size as the cache reports it, so a
 * quantized or condensed cache fits more) that makes. Idle caches kept for prefix caching count too.
 */
import { freemem, totalmem } from 'node:os';

/** Share of the machine's memory the KV budget takes by default. */
export const DEFAULT_KV_BUDGET_SHARE_OF_TOTAL = 0.25;
/** ... and at most this share of the memory free once the model is loaded. */
export const DEFAULT_KV_BUDGET_SHARE_OF_FREE = 0.5;

/** The default budget: a quarter of the machine's memory, at most half of what is free now. */
export function defaultKvBudget(): number {
  return Math.floor(Math.min(totalmem() * DEFAULT_KV_BUDGET_SHARE_OF_TOTAL, freemem() * DEFAULT_KV_BUDGET_SHARE_OF_FREE));
}

const UNITS: Record<string, number> = { '': 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30 };

/** Bytes from a flag: a whole number, optionally with k, M, G (powers of 1000) or KiB, MiB, GiB. */
export function parseBytes(flag: string, raw: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(raw);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  const v = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!(Number.isSafeInteger(v) && v >= 1)) throw new Error(`--${flag} must be a number of bytes, e.g. 2000000000, 2G or 1.5GiB; got '${raw}'`);
  return v;
}

/** Generations whose caches fit in `budget`; a clear error when not even one does. */
export function kvSessions(budget: number, cacheBytes: number, cacheSize: number): number {
  const n = Math.floor(budget / cacheBytes);
  if (n < 1) {
    throw new Error(
      `the KV budget of ${budget} bytes holds no KV cache: one of ${cacheSize} tokens takes ${cacheBytes} bytes; raise --kv-budget to at least ${cacheBytes} or lower --cache-size`,
    );
  }
  return n;
}
