/**
 * Cross-layer KV sharing: which layer's keys and values each decoder layer attends to. A standard
 * transformer is the identity (every layer its own). LCKV (Wu & Tu, ACL 2024) points most layers at
 * the top layer's KV; CLA shares one layer's KV with the next; YOCO-like patterns mix both.
 *
 * A layer computes (projects, ropes and caches) keys and values only if some layer reads them, so
 * only those layers get a cache layer: the KV cache of a map holds `kvLayerCount` layers instead of
 * `nLayers`. A layer whose KV layer lies above it reads keys and values the current token has not
 * reached yet: it must not see the current token (`noDiagonal`), and a prompt needs either a
 * token-by-token pass or an iterative one (see `LayerSchedule`).
 */
export interface KVLayerMap {
  /** source[i]: the layer whose keys and values layer i attends to. */
  readonly source: readonly number[];
  /** noDiagonal[i]: layer i does not see the current token's own key and value (LCKV's no_diag). */
  readonly noDiagonal: readonly boolean[];
  /** window[i]: layer i's sliding window in tokens, null for full attention. */
  readonly window: readonly (number | null)[];
}

/** Where each decoder layer writes and reads in a cache of `count` layers (the KV-computing ones). */
export interface KVSlots {
  /** write[i]: the cache layer layer i writes, or -1 when it computes no keys and values. */
  readonly write: readonly number[];
  /** read[i]: the cache layer layer i attends to. */
  readonly read: readonly number[];
  readonly count: number;
  /** Layers whose keys and values a lower layer reads (their new rows must exist before they are written). */
  readonly readFromBelow: readonly number[];
}

/** The identity map of a standard transformer. */
export function identityKVLayerMap(nLayers: number, window: number | null = null): KVLayerMap {
  return { source: Array.from({ length: nLayers }, (_, i) => i), noDiagonal: new Array<boolean>(nLayers).fill(false), window: new Array<number | null>(nLayers).fill(window) };
}

/** Whether layer i projects keys and values (some layer reads them). */
export function computesKV(map: KVLayerMap, layer: number): boolean {
  return map.source.includes(layer);
}

/** Throws unless the map is one a model can run; `where` names the setting in the message. */
export function checkKVLayerMap(map: KVLayerMap, nLayers: number, where = 'KV layer map'): void {
  const { source, noDiagonal, window } = map;
  if (source.length !== nLayers || noDiagonal.length !== nLayers || window.length !== nLayers) {
    throw new Error(`${where}: needs one entry per layer (${nLayers}), got ${source.length}`);
  }
  source.forEach((s, i) => {
    if (!Number.isSafeInteger(s) || s < 0 || s >= nLayers) throw new Error(`${where}: layer ${i} reads layer ${s}, which is not in [0, ${nLayers - 1}]`);
    if (source[s] !== s) throw new Error(`${where}: layer ${i} reads layer ${s}, but layer ${s} reads layer ${source[s]}; a layer that others read must read its own keys and values`);
    if (s > i && !noDiagonal[i]) throw new Error(`${where}: layer ${i} reads layer ${s} above it, so it cannot see the current token: set noDiagonal for it`);
    const w = window[i];
    if (w !== null && !(Number.isSafeInteger(w) && w > 0)) throw new Error(`${where}: layer ${i} has sliding window ${w}; use a positive integer or null`);
  });
}

/** Cache layer indices for a map: KV-computing layers in order, each decoder layer's read and write. */
export function kvSlots(map: KVLayerMap): KVSlots {
  const write = map.source.map(() => -1);
  let count = 0;
  map.source.forEach((_, i) => {
    if (computesKV(map, i)) write[i] = count++;
  });
  const read = map.source.map((s) => write[s]);
  const readFromBelow = [...new Set(map.source.filter((s, i) => s > i))];
  return { write, read, count, readFromBelow };
}

/** Layers that compute keys and values: the cache layers of the map (a standard model: all). */
export function kvLayerCount(map: KVLayerMap | null, nLayers: number): number {
  return map ? kvSlots(map).count : nLayers;
}
