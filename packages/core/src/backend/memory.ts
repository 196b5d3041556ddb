export type MemoryUse = 'weights' | 'kv' | 'activations' | 'other';
export const MEMORY_USES: readonly MemoryUse[] = ['weights', 'kv', 'activations', 'other'];

export type MemoryByUse = Record<MemoryUse, number>;

export interface MemorySnapshot {
  current: MemoryByUse;
  /** Highest value each use reached on its own. */
  peak: MemoryByUse;
  currentTotal: number;
  /** Highest total reached at one moment (not the sum of the per-use peaks). */
  peakTotal: number;
}

const zero = (): MemoryByUse => ({ weights: 0, kv: 0, activations: 0, other: 0 });

/** Byte accounting by use, kept by each backend as it allocates and frees. */
export class MemoryTracker {
  private current = zero();
  private peak = zero();
  private total = 0;
  private peakTotal = 0;

  allocated(use: MemoryUse, bytes: number): void {
    this.current[use] += bytes;
    this.total += bytes;
    if (this.current[use] > this.peak[use]) this.peak[use] = this.current[use];
    if (this.total > this.peakTotal) this.peakTotal = this.total;
  }

  freed(use: MemoryUse, bytes: number): void {
    if (bytes > this.current[use]) throw new Error(`memory accounting: freeing ${bytes} bytes of ${use} but only ${this.current[use]} are allocated`);
    this.current[use] -= bytes;
    this.total -= bytes;
  }

  /** Starts a new peak window from the current state (e.g. before a benchmark). */
  resetPeak(): void {
    this.peak = { ...this.current };
    this.peakTotal = this.total;
  }

  snapshot(): MemorySnapshot {
    return { current: { ...this.current }, peak: { ...this.peak }, currentTotal: this.total, peakTotal: this.peakTotal };
  }
}
