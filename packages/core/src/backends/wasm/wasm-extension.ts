import type { TypedArray } from '../../backend/backend.js';
import type { Tensor } from '../../tensor/tensor.js';
import { wasmApi, type WasmModule } from './wasm-api.js';

/**
 * Kernels a package adds to a WasmBackend (`backend.loadKernels(name, bytes, ops)`): the package's
 * own WebAssembly module, instantiated over the backend's shared memory on the calling thread and
 * in every pool worker. Its exports work on addresses in that memory (a tensor's `address`), and
 * `parallelFor` runs one of them over the thread pool the way core's own threaded kernels run.
 *
 * The contract for such a module, checked at load:
 * - it imports exactly one thing, `env.memory` (shared), and nothing else;
 * - it has no data segment: instantiating it in each worker must not write the memory (a segment
 *   would overwrite whatever the backend keeps at those addresses), so tables live in code or in
 *   blocks the package allocates;
 * - every op run through `parallelFor` has the signature `(...args, i0, i1, scratch)`: items
 *   [i0, i1) of the work, and the calling thread's scratch block.
 */
export interface WasmKernels {
  /** The name the module was loaded under. */
  readonly name: string;
  /** The module's exports on the calling thread (call them directly for serial work). */
  readonly exports: Readonly<Record<string, (...args: number[]) => number | void>>;
  /** The address of a tensor of this backend in the shared memory. */
  address(t: Tensor): number;
  /**
   * Runs `op(...args, i0, i1, scratch)` over items [0, items) on every thread, in chunks of a
   * multiple of `grain` items (on the calling thread alone when `work`, in multiply-adds, is below
   * the backend's minParallelWork). Each thread gets its own `scratchBytes`-byte scratch block
   * (64-byte aligned). At most 16 arguments.
   */
  parallelFor(op: string, args: readonly number[], items: number, grain: number, scratchBytes: number, work?: number): void;
}

/** The module's exports a pool can run, with its position in the pool's op list. */
export interface LoadedExtension {
  readonly name: string;
  readonly module: WasmModule;
  readonly ops: readonly string[];
  readonly exports: Record<string, (...args: number[]) => number | void>;
}

export const addressOf = (t: Tensor): number => (t.handle as TypedArray).byteOffset;

/** Section ids of the wasm binary format that would write memory on instantiation. */
const DATA_SECTION = 11;
const DATA_COUNT_SECTION = 12;

/** Throws unless `bytes` is a module that follows WasmKernels' contract; returns it compiled. */
export async function compileExtension(name: string, bytes: Uint8Array, ops: readonly string[]): Promise<WasmModule> {
  if (hasDataSegments(bytes)) throw new Error(`wasm kernels '${name}': the module has a data segment; compile it without static data (it would overwrite the backend's memory in every worker)`);
  const api = wasmApi();
  let module: WasmModule;
  try {
    module = await api.compile(bytes);
  } catch (e) {
    throw new Error(`wasm kernels '${name}' do not compile here: ${e instanceof Error ? e.message : String(e)}`);
  }
  const imports = api.Module.imports(module);
  const other = imports.filter((i) => !(i.module === 'env' && i.name === 'memory' && i.kind === 'memory'));
  if (other.length > 0 || imports.length !== 1) {
    throw new Error(`wasm kernels '${name}' must import only env.memory, but import ${imports.map((i) => `${i.module}.${i.name}`).join(', ') || 'nothing'}`);
  }
  const exported = new Set(api.Module.exports(module).filter((e) => e.kind === 'function').map((e) => e.name));
  const missing = ops.filter((op) => !exported.has(op));
  if (missing.length > 0) throw new Error(`wasm kernels '${name}' do not export ${missing.join(', ')}`);
  return module;
}

/** True when the binary has a data section with at least one segment. */
function hasDataSegments(bytes: Uint8Array): boolean {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) throw new Error('not a WebAssembly module (bad magic number)');
  let at = 8;
  const leb = (): number => {
    let v = 0;
    for (let shift = 0; ; shift += 7) {
      const b = bytes[at++];
      v += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (at < bytes.length) {
    const id = bytes[at++];
    const size = leb();
    const end = at + size;
    if ((id === DATA_SECTION || id === DATA_COUNT_SECTION) && leb() > 0) return true;
    at = end;
  }
  return false;
}
