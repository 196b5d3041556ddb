import { KERNELS_RELAXED_WASM_BASE64, KERNELS_WASM_BASE64 } from './kernels-wasm.js';
import { wasmApi, type WasmModule } from './wasm-api.js';

/**
 * Which build of the kernels runs: both come from the same source (wasm/build.mjs); 'relaxed-simd'
 * computes the q8_0 / q4_0 integer dot products with i32x4.relaxed_dot_i8x16_i7x16_add_s.
 */
export type WasmSimd = 'relaxed-simd' | 'simd128';

/** The choice a backend is created with: 'auto' takes relaxed SIMD where it validates and is exact. */
export type WasmSimdChoice = WasmSimd | 'auto';

export interface KernelModule {
  simd: WasmSimd;
  module: WasmModule;
}

const decode = (base64: string) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));

let simd128: Promise<WasmModule> | null = null;
// The relaxed module once it validated and passed the self-test; else the reason it was refused.
let relaxed: Promise<WasmModule | string> | null = null;

/** The SIMD128 module, compiled once per process (or page) and shared by every backend and worker. */
export function simd128Module(): Promise<WasmModule> {
  simd128 ??= wasmApi().compile(decode(KERNELS_WASM_BASE64));
  return simd128;
}

/** The relaxed-SIMD module if this runtime compiles it and computes its dot products exactly. */
export function relaxedModule(): Promise<WasmModule | string> {
  relaxed ??= wasmApi()
    .compile(decode(KERNELS_RELAXED_WASM_BASE64))
    .then(
      (module) => selfTest(module) ?? module,
      (err: unknown) => `this runtime does not validate relaxed SIMD (${err instanceof Error ? err.message : String(err)})`,
    );
  return relaxed;
}

/** The module for a backend: 'auto' prefers relaxed SIMD; asking for it where it fails throws. */
export async function kernelModule(choice: WasmSimdChoice = 'auto'): Promise<KernelModule> {
  if (choice !== 'simd128') {
    const r = await relaxedModule();
    if (typeof r !== 'string') return { simd: 'relaxed-simd', module: r };
    if (choice === 'relaxed-simd') throw new Error(`simd: 'relaxed-simd' is not available: ${r}; use 'simd128' or 'auto'`);
  }
  return { simd: 'simd128', module: await simd128Module() };
}

interface SelfTestExports {
  heap_base(): number;
  repack_rows(src: number, dst: number, rows: number, nb: number, bb: number): number;
  xq_bytes(T: number, inF: number): number;
  quantize_x_i8(x: number, xq: number, T: number, inF: number, q4: number): void;
  linear_q8_0_i8(...args: number[]): void;
  linear_q4_0_i8(...args: number[]): void;
}

/**
 * A known answer for the relaxed q8_0 and q4_0 linears on a throwaway memory: integer activations
 * with a ±127 in every block (so they quantize to themselves), weights with scale 1 and quants of
 * both signs, so every output is an exact integer sum. Node 20 with --experimental-wasm-relaxed-simd
 * compiles the module but gets these sums wrong. Returns why it failed, or null.
 */
function selfTest(module: WasmModule): string | null {
  const api = wasmApi();
  const memory = new api.Memory({ initial: 2, maximum: 2, shared: true });
  const ex = new api.Instance(module, { env: { memory } }).exports as unknown as SelfTestExports;
  const T = 5, inF = 96, outF = 3, nb = inF / 32;
  const base = (ex.heap_base() + 15) & ~15;
  const xp = base, xq = xp + T * inF * 4, raw = xq + ex.xq_bytes(T, inF), wp = raw + 1024, out = wp + 1024;
  if (out + T * outF * 4 > memory.buffer.byteLength) return 'the self-test does not fit its memory';
  const heap = new DataView(memory.buffer);
  const x = new Int32Array(T * inF);
  for (let i = 0; i < x.length; i++) x[i] = i % 32 === 5 ? ((i >> 5) % 2 ? 127 : -127) : ((i * 37 + 11) % 255) - 127;
  x.forEach((v, i) => heap.setFloat32(xp + 4 * i, v, true));
  for (const q4 of [0, 1]) {
    const bb = q4 ? 18 : 34;
    const w = new Int32Array(outF * inF);
    for (let i = 0; i < w.length; i++) w[i] = q4 ? (i * 7 + 3) % 16 : ((i * 53 + 17) % 255) - 127;
    // llama.cpp's blocks: f16 scale 1.0, then the quants (q4_0: value j and j + 16 share byte j).
    for (let o = 0; o < outF; o++) {
      for (let b = 0; b < nb; b++) {
        const blk = raw + (o * nb + b) * bb;
        heap.setUint16(blk, 0x3c00, true);
        for (let j = 0; j < (q4 ? 16 : 32); j++) {
          const at = o * inF + b * 32 + j;
          heap.setUint8(blk + 2 + j, q4 ? w[at] | (w[at + 16] << 4) : w[at] & 0xff);
        }
      }
    }
    ex.repack_rows(raw, wp, outF, nb, bb);
    ex.quantize_x_i8(xp, xq, T, inF, q4);
    (q4 ? ex.linear_q4_0_i8 : ex.linear_q8_0_i8)(xq, wp, 0, out, T, inF, outF, 0, outF, raw);
    for (let t = 0; t < T; t++) {
      for (let o = 0; o < outF; o++) {
        let expected = 0;
        for (let j = 0; j < inF; j++) expected += (q4 ? w[o * inF + j] - 8 : w[o * inF + j]) * x[t * inF + j];
        const got = heap.getFloat32(out + 4 * (t * outF + o), true);
        if (got !== expected) return `its ${q4 ? 'q4_0' : 'q8_0'} self-test computed ${got} where ${expected} is exact (row ${t}, output ${o})`;
      }
    }
  }
  return null;
}
