import type { WasmMemory, WasmModule } from './wasm-api.js';
import { threads as platform } from '../../platform/threads.js';
import type { WorkerHandle } from '../../platform/types.js';

/**
 * Threads for the wasm kernels: N − 1 workers plus the calling thread, each with its own instance
 * of the kernels module over the same shared memory. A call writes the kernel's arguments into a
 * control block in that memory, bumps a generation counter and wakes the workers (Atomics.notify);
 * every thread takes chunks of output rows from a shared counter until none are left, counts itself
 * done, and the caller spins until all have. Taking chunks rather than fixed shares keeps both
 * threads busy when one starts late (a worker waking from sleep) or runs slower (a busy core). No
 * message is posted per call, so a call costs microseconds. Idle workers spin briefly (a decode
 * step calls kernels back to back) and then sleep in Atomics.wait.
 */

// Control block layout (i32 slots; f64 arguments from byte 64).
const GEN = 0;
const DONE = 1;
const OP = 2;
const NARGS = 3;
const ROWS = 4;
const CHUNK = 5;
const SCRATCH = 6;
const SCRATCH_STRIDE = 7;
const THREADS = 8;
const FAILED = 9;
const CALLER_WAITING = 10;
const NEXT = 11;
export const CONTROL_BYTES = 64 + 8 * 16;
const MAX_ARGS = 16;

/** Spins of an idle worker before it sleeps (roughly 100 µs). */
const SPIN = 20000;
/** Row chunks per thread per call: enough to even out a late or slow thread. */
const CHUNKS_PER_THREAD = 8;

// The worker's program, `start(data, post)`; the platform adds the lines that call it (a Node worker
// or a browser Web Worker).
const WORKER_SOURCE = `
'use strict';
function start(data, post) {
  const { module, memory, control, index, ops, extensions } = data;
  const exp = new WebAssembly.Instance(module, { env: { memory } }).exports;
  const fns = ops.map((name) => exp[name]);
  // Extension modules' ops follow the kernels module's, in order.
  for (const x of extensions) {
    const e = new WebAssembly.Instance(x.module, { env: { memory } }).exports;
    for (const name of x.ops) fns.push(e[name]);
  }
  const c = new Int32Array(memory.buffer, control, 16);
  const a = new Float64Array(memory.buffer, control + 64, ${MAX_ARGS});
  const args = [];
  let gen = Atomics.load(c, ${GEN});
  post('ready');
  for (;;) {
    let spins = 0;
    while (Atomics.load(c, ${GEN}) === gen) {
      if (++spins > ${SPIN}) { Atomics.wait(c, ${GEN}, gen); spins = 0; }
    }
    gen = Atomics.load(c, ${GEN});
    const op = c[${OP}];
    if (op < 0) return;
    try {
      const rows = c[${ROWS}], chunk = c[${CHUNK}], n = c[${NARGS}];
      args.length = n + 3;
      for (let k = 0; k < n; k++) args[k] = a[k];
      args[n + 2] = c[${SCRATCH}] + index * c[${SCRATCH_STRIDE}];
      for (let r0 = Atomics.add(c, ${NEXT}, chunk); r0 < rows; r0 = Atomics.add(c, ${NEXT}, chunk)) {
        args[n] = r0;
        args[n + 1] = Math.min(rows, r0 + chunk);
        fns[op].apply(null, args);
      }
    } catch (e) {
      Atomics.store(c, ${FAILED}, 1);
    }
    Atomics.add(c, ${DONE}, 1);
    if (Atomics.load(c, ${CALLER_WAITING})) Atomics.notify(c, ${DONE});
  }
}
`;

export interface PoolInit {
  module: WasmModule;
  memory: WasmMemory;
  /** Address of CONTROL_BYTES bytes reserved for the pool. */
  control: number;
  /** Export names callable through the pool; a call names its op by index in this list. */
  ops: readonly string[];
  /** Total threads including the caller's. */
  threads: number;
  /**
   * More modules over the same memory (WasmBackend.loadKernels), instantiated in every worker:
   * their ops are numbered after `ops`, in order.
   */
  extensions?: readonly { module: WasmModule; ops: readonly string[] }[];
}

export class ThreadPool {
  readonly threads: number;
  private readonly c: Int32Array;
  private readonly a: Float64Array;
  private readonly workers: WorkerHandle[];
  private closed = false;

  private constructor(init: PoolInit, workers: WorkerHandle[]) {
    this.threads = init.threads;
    this.c = new Int32Array(init.memory.buffer, init.control, 16);
    this.a = new Float64Array(init.memory.buffer, init.control + 64, MAX_ARGS);
    this.workers = workers;
  }

  static async create(init: PoolInit): Promise<ThreadPool> {
    const c = new Int32Array(init.memory.buffer, init.control, 16);
    c.fill(0);
    c[THREADS] = init.threads;
    const workers: WorkerHandle[] = [];
    try {
      for (let i = 1; i < init.threads; i++) {
        workers.push(await platform.spawnWorker(WORKER_SOURCE, { module: init.module, memory: init.memory, control: init.control, index: i, ops: init.ops, extensions: init.extensions ?? [] }));
      }
    } catch (e) {
      for (const w of workers) await w.terminate();
      throw e;
    }
    return new ThreadPool(init, workers);
  }

  /**
   * Runs `fn(...args, r0, r1, scratch)` over [0, rows) in chunks of a multiple of `grain` rows,
   * on every thread; thread i's scratch is `scratch + i * scratchStride`. `fn` is the caller's
   * own instance's export for op `op`.
   */
  run(op: number, fn: (...a: number[]) => void, args: readonly number[], rows: number, grain: number, scratch: number, scratchStride: number): void {
    if (this.closed) throw new Error('the wasm backend was disposed');
    const n = this.threads;
    if (n === 1 || rows <= grain) {
      fn(...args, 0, rows, scratch);
      return;
    }
    if (args.length > MAX_ARGS) throw new Error(`a pooled kernel takes at most ${MAX_ARGS} arguments`);
    const c = this.c;
    for (let k = 0; k < args.length; k++) this.a[k] = args[k];
    c[NARGS] = args.length;
    c[OP] = op;
    c[ROWS] = rows;
    c[SCRATCH] = scratch;
    c[SCRATCH_STRIDE] = scratchStride;
    // About CHUNKS_PER_THREAD chunks per thread, each a multiple of the grain.
    const chunk = Math.ceil(rows / (n * CHUNKS_PER_THREAD) / grain) * grain;
    c[CHUNK] = chunk;
    c[NEXT] = 0;
    c[DONE] = 0;
    Atomics.add(c, GEN, 1);
    Atomics.notify(c, GEN);
    let error: unknown = null;
    // One argument list for all of this thread's chunks: only r0 and r1 change.
    const call = [...args, 0, 0, scratch];
    try {
      for (let r0 = Atomics.add(c, NEXT, chunk); r0 < rows; r0 = Atomics.add(c, NEXT, chunk)) {
        call[args.length] = r0;
        call[args.length + 1] = Math.min(rows, r0 + chunk);
        fn(...call);
      }
    } catch (e) {
      error = e;
      // Leave no rows for the workers to start on; they finish the chunks they hold.
      Atomics.store(c, NEXT, rows);
    }
    this.waitDone(n - 1);
    if (error) throw error;
    if (c[FAILED]) {
      c[FAILED] = 0;
      throw new Error('a wasm kernel failed in a worker thread');
    }
  }

  /**
   * Spins until `workers` have finished; past a short spin (a worker not scheduled, on a busy
   * machine) it sleeps in Atomics.wait where the platform allows it, which Node's main thread does.
   */
  private waitDone(workers: number): void {
    const c = this.c;
    for (let spins = 0; Atomics.load(c, DONE) < workers; spins++) {
      if (spins < SPIN || !platform.canBlock) continue;
      Atomics.store(c, CALLER_WAITING, 1);
      const done = Atomics.load(c, DONE);
      if (done < workers) Atomics.wait(c, DONE, done, 1);
      Atomics.store(c, CALLER_WAITING, 0);
    }
  }

  /** Ends the workers; the pool cannot be used afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.c, OP, -1);
    Atomics.add(this.c, GEN, 1);
    Atomics.notify(this.c, GEN);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * Physical cores where the platform says (Linux: distinct core ids in sysfs), else the logical
 * count. SMT siblings share one core's vector units, so kernels bound by them gain little.
 */
export const physicalCores = (): Promise<number> => platform.physicalCores();

/**
 * The wasm backend's threads when none are asked for: the physical cores; in a browser page that is
 * not cross-origin isolated (no SharedArrayBuffer), 1, with a one-time message saying how to get more.
 */
export const defaultThreads = (): Promise<number> => platform.defaultThreads();
