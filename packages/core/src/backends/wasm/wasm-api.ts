/**
 * The parts of the WebAssembly JS API the wasm backend uses, typed here because the project's
 * TypeScript settings include neither the DOM library nor Node's WebAssembly globals. The same
 * objects exist in Node and in browsers.
 */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  grow(pages: number): number;
}

/** A compiled module (opaque; cloneable to workers). */
export type WasmModule = object & { readonly __wasmModule?: never };

interface WebAssemblyApi {
  compile(bytes: Uint8Array): Promise<WasmModule>;
  Module: {
    imports(module: WasmModule): { module: string; name: string; kind: string }[];
    exports(module: WasmModule): { name: string; kind: string }[];
  };
  Memory: new (desc: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => { exports: Record<string, unknown> };
}

export const wasmApi = (): WebAssemblyApi => (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;
