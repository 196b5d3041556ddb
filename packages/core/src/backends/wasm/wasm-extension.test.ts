/**
 * WasmBackend.loadKernels: a package's module runs over the backend's memory on every pool thread,
 * core's own pooled kernels keep working after the pool restarts, and modules that break the
 * contract (a data segment, other imports, a missing op) are refused with a sentence saying why.
 */
import asc from 'assemblyscript/asc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshRng, randn } from '../../testing/random.js';
import { CpuBackend } from '../cpu/cpu-backend.js';
import { expectWithin, f32, kernel, out, values } from './kernel-test-helpers.js';
import { WasmBackend } from './wasm-backend.js';

async function compile(source: string): Promise<Uint8Array> {
  const r = await asc.compileString(source, { runtime: 'stub', importMemory: true, sharedMemory: true, maximumMemory: 65536, enable: ['simd', 'threads'], optimizeLevel: 3, noAssert: true, use: ['abort='] });
  if (r.error || !r.binary) throw new Error(`compile: ${String(r.stderr)}`);
  return r.binary;
}

// fill: value + i for items [i0, i1). meet: item 0 waits (up to 20 s) until item 1 has set the flag,
// so item 0's thread cannot take item 1 itself: the flag is seen set only if another thread ran it.
const FILL = `
export function fill(out: usize, value: f32, i0: i32, i1: i32, scratch: usize): void {
  for (let i = i0; i < i1; i++) store<f32>(out + (<usize>i << 2), value + <f32>i);
}
export function meet(flag: usize, seen: usize, i0: i32, i1: i32, scratch: usize): void {
  for (let i = i0; i < i1; i++) {
    if (i == 0) {
      atomic.wait<i32>(flag, 0, 20_000_000_000);
      store<i32>(seen, atomic.load<i32>(flag));
    } else {
      atomic.store<i32>(flag, 1);
      atomic.notify(flag, 1);
    }
  }
}`;

const rng = freshRng();

describe('WasmBackend.loadKernels', () => {
  let wasm: WasmBackend;
  beforeAll(async () => {
    wasm = await WasmBackend.create({ threads: 2, minParallelWork: 0 });
  });
  afterAll(() => wasm.close());

  it('runs an op of the module over items on every thread, and core kernels still run on the new pool', async () => {
    const k = await wasm.loadKernels('fill', await compile(FILL), ['fill', 'meet']);
    expect(await wasm.loadKernels('fill', new Uint8Array(0), ['fill'])).toBe(k);
    const n = 4099;
    const o = out(wasm, [n]);
    k.parallelFor('fill', [k.address(o), 0.5], n, 1, 64);
    expect(values(o)).toEqual(Array.from({ length: n }, (_, i) => 0.5 + i));
    // A worker thread runs the module too.
    const flags = wasm.allocate([2], 'i32', 'other');
    k.parallelFor('meet', [k.address(flags), k.address(flags) + 4], 2, 1, 64);
    expect(Array.from(flags.handle as Int32Array)).toEqual([1, 1]);
    expect(() => k.parallelFor('nope', [], 1, 1, 0)).toThrow(/no op 'nope'/);

    const [T, inF, outF] = [3, 67, 37];
    const x = randn(T * inF, rng.normal), w = randn(outF * inF, rng.normal);
    const cpu = new CpuBackend();
    const run = (be: CpuBackend | WasmBackend) => {
      const y = out(be, [T, outF]);
      kernel(be)('linear', 'f32')(f32(be, x, [T, inF]), f32(be, w, [outF, inF]), null, y);
      return values(y);
    };
    const ref = run(cpu);
    expectWithin(run(wasm), ref, (i) => 1e-5 * Math.max(1, Math.abs(ref[i])));
  });

  it('refuses modules that break the contract', async () => {
    await expect(wasm.loadKernels('data', await compile(`const T: StaticArray<f32> = [1, 2, 3]; export function f(i: i32): f32 { return T[i]; }`), ['f'])).rejects.toThrow(/has a data segment/);
    await expect(wasm.loadKernels('imports', await compile(`declare function log(x: i32): void; export function f(i: i32): void { log(i); }`), ['f'])).rejects.toThrow(/must import only env.memory/);
    await expect(wasm.loadKernels('missing', await compile(FILL), ['fill', 'other'])).rejects.toThrow(/do not export other/);
    await expect(wasm.loadKernels('junk', new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), [])).rejects.toThrow(/not a WebAssembly module/);
  });
});
