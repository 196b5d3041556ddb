/**
 * Admission control: at most `parallel` generations run at once (fewer when the KV budget holds
 * fewer caches: `limitTo`), at most `maxQueue` more wait in
 * arrival order, and the rest are turned away at once (503). A waiting request whose client goes
 * away leaves the queue; a running one gives its slot back when its generation ends.
 */
import { queueFull, shuttingDown } from './openai-errors.js';

export interface SchedulerOptions {
  /** Generations running at the same time (default 1). */
  parallel?: number;
  /** Requests waiting for a slot beyond those running (default 64). */
  maxQueue?: number;
  /** Called whenever the running or waiting count changes. */
  onChange?: (running: number, waiting: number) => void;
}

interface Waiter {
  resolve: (release: () => void) => void;
  reject: (err: unknown) => void;
}

export class Scheduler {
  readonly parallel: number;
  readonly maxQueue: number;
  private active = 0;
  private memoryLimit = Infinity;
  private readonly queue: Waiter[] = [];
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: SchedulerOptions = {}) {
    this.parallel = opts.parallel ?? 1;
    this.maxQueue = opts.maxQueue ?? 64;
    if (!(Number.isSafeInteger(this.parallel) && this.parallel >= 1)) throw new RangeError(`parallel must be an integer >= 1, got ${this.parallel}`);
    if (!(Number.isSafeInteger(this.maxQueue) && this.maxQueue >= 0)) throw new RangeError(`maxQueue must be an integer >= 0, got ${this.maxQueue}`);
  }

  /** Generations that may run at once: `parallel`, or fewer when memory holds fewer. */
  get capacity(): number {
    return Math.min(this.parallel, this.memoryLimit);
  }

  /** Caps the running generations at `n` (the KV caches the memory budget holds). */
  limitTo(n: number): void {
    if (!(Number.isSafeInteger(n) && n >= 1)) throw new RangeError(`the running limit must be an integer >= 1, got ${n}`);
    this.memoryLimit = n;
  }

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Resolves with a release function once a slot is free. Rejects at once with a 503 when the
   * queue is full or the server is closing, and with the signal's reason if it aborts first.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.closed) return Promise.reject(shuttingDown());
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.active < this.capacity) {
      this.active++;
      this.changed();
      return Promise.resolve(this.releaser());
    }
    if (this.queue.length >= this.maxQueue) return Promise.reject(queueFull());
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (release) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
        reject,
      };
      const onAbort = () => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        this.changed();
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
      this.changed();
    });
  }

  /** Refuses new requests from now on; those already queued still run. */
  close(): void {
    this.closed = true;
  }

  /** Turns away every waiting request with `err` (a drain that ran out of time). */
  rejectWaiting(err: unknown): void {
    for (const w of this.queue.splice(0)) w.reject(err);
    this.changed();
  }

  /** Resolves when nothing runs or waits. */
  idle(): Promise<void> {
    if (this.active === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.active <= this.capacity ? this.queue.shift() : undefined;
      // The slot passes straight to the next waiter: the running count stays the same.
      if (next) next.resolve(this.releaser());
      else this.active--;
      this.changed();
    };
  }

  private changed(): void {
    this.opts.onChange?.(this.active, this.queue.length);
    if (this.active === 0 && this.queue.length === 0) for (const w of this.idleWaiters.splice(0)) w();
  }
}
