import type { Backend } from '../backend/backend.js';
import { CpuBackend } from './cpu/cpu-backend.js';
import { WasmBackend, type WasmBackendOptions } from './wasm/wasm-backend.js';
import { mayHaveHardwareGpu, WebGpuUnavailableError } from './webgpu/device.js';
import { WebGpuBackend, type WebGpuBackendOptions } from './webgpu/webgpu-backend.js';

export type BackendChoice = 'cpu' | 'webgpu' | 'auto' | 'wasm';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['cpu', 'webgpu', 'auto', 'wasm'];

export interface CreatedBackend {
  backend: Backend;
  /** What was chosen, in words: "webgpu (llvmpipe via OpenGL ES, compatibility mode)", "cpu (no WebGPU adapter: ...)". */
  description: string;
}

/**
 * Resolves a backend choice. 'webgpu' fails with a `WebGpuUnavailableError` that says why (package,
 * system libraries, adapter) and what to do; 'auto' takes WebGPU when a hardware adapter exists and
 * the CPU otherwise (the wasm backend, or the TypeScript one where WebAssembly threads are
 * missing), saying which and why.
 */
export async function createBackend(choice: BackendChoice | Backend = 'cpu', webgpu: WebGpuBackendOptions = {}, wasm: WasmBackendOptions = {}): Promise<CreatedBackend> {
  if (typeof choice !== 'string') return { backend: choice, description: choice.name };
  switch (choice) {
    case 'cpu':
      return { backend: new CpuBackend(), description: 'cpu' };
    case 'wasm': {
      // WebAssembly SIMD kernels on worker threads over one shared memory.
      const backend = await WasmBackend.create(wasm);
      return { backend, description: `wasm (${threadsOf(backend)})` };
    }
    case 'webgpu': {
      const backend = await WebGpuBackend.create(webgpu);
      return { backend, description: `webgpu (${backend.description})` };
    }
    case 'auto':
      if (!(await mayHaveHardwareGpu())) return onTheCpu('no GPU found', wasm);
      try {
        const backend = await WebGpuBackend.create(webgpu);
        // A software adapter (llvmpipe, SwiftShader) is a CPU in disguise and slower than the CPU backends.
        if (!backend.cpuAdapter) return { backend, description: `webgpu (${backend.description})` };
        backend.destroy();
        return onTheCpu(`the only WebGPU adapter, ${backend.description}, runs on the CPU`, wasm);
      } catch (e) {
        if (!(e instanceof WebGpuUnavailableError)) throw e;
        return onTheCpu(`WebGPU unavailable: ${e.message}`, wasm);
      }
    default:
      throw new Error(`unknown backend '${String(choice)}'; choose one of ${BACKEND_CHOICES.join(', ')}`);
  }
}

const threadsOf = (b: WasmBackend) => `${b.threads} thread${b.threads === 1 ? '' : 's'}`;

/**
 * The fastest CPU backend this platform runs: wasm on threads; else wasm on the calling thread alone
 * (no shared memory or workers, e.g. a page that is not cross-origin isolated); else the TypeScript one.
 */
async function onTheCpu(why: string, wasm: WasmBackendOptions, create = WasmBackend.create): Promise<CreatedBackend> {
  let threaded: Error;
  try {
    const backend = await create(wasm);
    return { backend, description: `wasm (${threadsOf(backend)}; ${why})` };
  } catch (e) {
    threaded = e as Error;
  }
  if (wasm.threads !== 1) {
    try {
      const backend = await create({ ...wasm, threads: 1 });
      return { backend, description: `wasm (1 thread: threads failed to start: ${threaded.message}; ${why})` };
    } catch {
      // The single-thread error says no more than the threaded one.
    }
  }
  return { backend: new CpuBackend(), description: `cpu (${why}; the wasm backend is unavailable: ${threaded.message})` };
}

/** For tests: the CPU fallback chain with a stand-in for WasmBackend.create. */
export const onTheCpuForTests = onTheCpu;
