/** Dense f64 linear algebra GPTQ needs (n × n, row-major). */

/** Lower Cholesky factor L of a symmetric positive definite A (A = L·Lᵀ), or null if A is not positive definite. */
export function cholesky(a: Float64Array, n: number): Float64Array | null {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j];
    for (let k = 0; k < j; k++) d -= l[j * n + k] * l[j * n + k];
    if (!(d > 0)) return null;
    const ljj = Math.sqrt(d);
    l[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j];
      const ri = i * n, rj = j * n;
      for (let k = 0; k < j; k++) s -= l[ri + k] * l[rj + k];
      l[ri + j] = s / ljj;
    }
  }
  return l;
}

/** L⁻¹ of a lower-triangular L (also lower-triangular). */
export function invertLower(l: Float64Array, n: number): Float64Array {
  const inv = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    inv[j * n + j] = 1 / l[j * n + j];
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      for (let k = j; k < i; k++) s += l[i * n + k] * inv[k * n + j];
      inv[i * n + j] = -s / l[i * n + i];
    }
  }
  return inv;
}

/**
 * The upper Cholesky factor U of A⁻¹ (A⁻¹ = Uᵀ·U) for a positive definite A: GPTQ's `Hinv`.
 * A = L·Lᵀ gives A⁻¹ = L⁻ᵀ·L⁻¹, whose Cholesky factor is then taken and transposed.
 */
export function upperCholeskyOfInverse(a: Float64Array, n: number): Float64Array | null {
  const l = cholesky(a, n);
  if (!l) return null;
  const li = invertLower(l, n);
  // A⁻¹[i][j] = Σ_k Li[k][i] · Li[k][j], k ≥ max(i, j).
  const inv = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const rk = k * n;
    for (let i = 0; i <= k; i++) {
      const v = li[rk + i];
      if (v === 0) continue;
      const ri = i * n;
      for (let j = 0; j <= i; j++) inv[ri + j] += v * li[rk + j];
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) inv[j * n + i] = inv[i * n + j];
  const l2 = cholesky(inv, n);
  if (!l2) return null;
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) u[j * n + i] = l2[i * n + j];
  return u;
}
