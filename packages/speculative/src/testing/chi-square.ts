/**
 * Pearson's chi-square goodness of fit for the statistical tests: observed counts against expected
 * probabilities, cells expected fewer than 5 times pooled into one.
 */
export function chiSquare(observed: ArrayLike<number>, expected: ArrayLike<number>): { statistic: number; df: number; critical: number } {
  let n = 0;
  for (let i = 0; i < observed.length; i++) n += observed[i];
  let statistic = 0;
  let cells = 0;
  let poolO = 0;
  let poolE = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i] * n;
    if (e < 5) {
      poolO += observed[i];
      poolE += e;
      continue;
    }
    statistic += (observed[i] - e) ** 2 / e;
    cells++;
  }
  if (poolE > 0) {
    // A pooled cell with almost no expected mass still catches tokens that should never appear.
    statistic += (poolO - poolE) ** 2 / Math.max(poolE, 1);
    cells++;
  }
  const df = Math.max(1, cells - 1);
  return { statistic, df, critical: chiSquareCritical(df, 3.719) };
}

/** The chi-square quantile at standard-normal quantile z (3.719: p = 1e-4), by Wilson–Hilferty. */
export function chiSquareCritical(df: number, z: number): number {
  const a = 2 / (9 * df);
  return df * (1 - a + z * Math.sqrt(a)) ** 3;
}

/**
 * The sampler's pipeline written out independently, in f64: temperature, top-k (ties at the edge
 * kept), top-p (most probable first, lower id first on ties), min-p, renormalized.
 */
export function referenceDistribution(logits: ArrayLike<number>, o: { temperature: number; topK?: number; topP?: number; minP?: number }): Float64Array {
  const V = logits.length;
  const l = Array.from(logits, (x) => x / o.temperature);
  let keep = [...Array(V).keys()];
  if (o.topK && o.topK < V) {
    const kth = [...l].sort((a, b) => b - a)[o.topK - 1];
    keep = keep.filter((i) => l[i] >= kth);
  }
  const max = Math.max(...keep.map((i) => l[i]));
  const w = new Float64Array(V);
  for (const i of keep) w[i] = Math.exp(l[i] - max);
  if (o.topP !== undefined && o.topP < 1) {
    const total = keep.reduce((s, i) => s + w[i], 0);
    const sorted = [...keep].sort((a, b) => w[b] - w[a] || a - b);
    const kept: number[] = [];
    let cum = 0;
    for (const i of sorted) {
      kept.push(i);
      cum += w[i];
      if (cum >= o.topP * total) break;
    }
    keep = kept;
  }
  if (o.minP) {
    const top = Math.max(...keep.map((i) => w[i]));
    keep = keep.filter((i) => w[i] >= o.minP! * top);
  }
  const out = new Float64Array(V);
  const total = keep.reduce((s, i) => s + w[i], 0);
  for (const i of keep) out[i] = w[i] / total;
  return out;
}
