import { WebGpuBackend, type WebGpuBackendOptions } from './webgpu-backend.js';

let shared: Promise<{ device: GPUDevice; description: string } | string> | null = null;

/**
 * A WebGPU backend for tests, on one device shared by the test file (through Dawn's OpenGL ES backend
 * on machines without a GPU). When no adapter can be had, CI (`CI` set) fails; elsewhere the caller
 * skips with the reason returned.
 */
export async function webGpuForTests(opts: WebGpuBackendOptions = {}): Promise<{ backend: WebGpuBackend | null; reason: string }> {
  shared ??= WebGpuBackend.create().then(
    (b) => ({ device: b.device, description: b.description }),
    (e: Error) => e.message,
  );
  const got = await shared;
  if (typeof got === 'string') {
    if (process.env.CI) throw new Error(`WebGPU is required in CI but unavailable: ${got}`);
    console.warn(`skipping WebGPU tests: ${got}`);
    return { backend: null, reason: got };
  }
  return { backend: new WebGpuBackend(got.device, opts, got.description), reason: '' };
}
