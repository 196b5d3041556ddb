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
 * the CPU otherwise, saying which and why.
 */
export async function createBackend(choice: BackendChoice | Backend = 'cpu', webgpu: WebGpuBackendOptions = {}, wasm: WasmBackendOptions = {}): Promise<CreatedBackend> {
  if (typeof choice !== 'string') return { backend: choice, description: choice.name };
  switch (choice) {
    case 'cpu':
      return { backend: new CpuBackend(), description: 'cpu' };
    case 'wasm': {
      // WebAssembly SIMD kernels on worker threads over one shared memory.
      const backend = await WasmBackend.create(wasm);
      return { backend, description: `wasm (${backend.threads} thread${backend.threads === 1 ? '' : 's'})` };
    }
    case 'webgpu': {
      const backend = await WebGpuBackend.create(webgpu);
      return { backend, description: `webgpu (${backend.description})` };
    }
    case 'auto':
      if (!(await mayHaveHardwareGpu())) return { backend: new CpuBackend(), description: 'cpu (no GPU found)' };
      try {
        const backend = await WebGpuBackend.create(webgpu);
        // A software adapter (llvmpipe, SwiftShader) is a CPU in disguise and slower than the CPU backend.
        if (!backend.cpuAdapter) return { backend, description: `webgpu (${backend.description})` };
        backend.destroy();
        return { backend: new CpuBackend(), description: `cpu (the only WebGPU adapter, ${backend.description}, runs on the CPU)` };
      } catch (e) {
        if (!(e instanceof WebGpuUnavailableError)) throw e;
        return { backend: new CpuBackend(), description: `cpu (WebGPU unavailable: ${e.message})` };
      }
    default:
      throw new Error(`unknown backend '${String(choice)}'; choose one of ${BACKEND_CHOICES.join(', ')}`);
  }
}
