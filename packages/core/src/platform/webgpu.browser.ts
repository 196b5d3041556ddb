import type { WebGpuPlatform } from './types.js';

/** Browsers: `navigator.gpu` is the only way to an adapter, and whether it is hardware shows only once asked. */
export const webgpu: WebGpuPlatform = { mayHaveHardwareGpu: async () => true, fallbackAdapter: null };
