/**
 * H = 2/n · Σ x·xᵀ over the n calibration rows a linear layer sees, accumulated in f64 one batch of
 * rows at a time (only the lower triangle is summed; `value()` mirrors it). Memory: in² f64.
 */
export class HessianAccumulator {
  private readonly sum: Float64Array;
  private rows = 0;

  constructor(readonly inFeatures: number) {
    this.sum = new Float64Array(inFeatures * inFeatures);
  }

  get samples(): number {
    return this.rows;
  }

  /** Adds rows x[0 .. rows) of width inFeatures (row-major). */
  add(x: ArrayLike<number>, rows: number): void {
    const n = this.inFeatures;
    if (x.length < rows * n) throw new Error(`hessian: ${rows} rows of ${n} need ${rows * n} values, got ${x.length}`);
    const s = this.sum;
    const row = new Float64Array(n);
    for (let t = 0; t < rows; t++) {
      for (let i = 0; i < n; i++) row[i] = x[t * n + i];
      for (let i = 0; i < n; i++) {
        const xi = row[i];
        if (xi === 0) continue;
        const ri = i * n;
        for (let j = 0; j <= i; j++) s[ri + j] += xi * row[j];
      }
    }
    this.rows += rows;
  }

  /** 2/n · XᵀX (a new array). */
  value(): Float64Array {
    const n = this.inFeatures;
    const f = this.rows ? 2 / this.rows : 0;
    const h = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        const v = this.sum[i * n + j] * f;
        h[i * n + j] = v;
        h[j * n + i] = v;
      }
    }
    return h;
  }
}
