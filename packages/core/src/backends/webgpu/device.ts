/// <reference types="@webgpu/types" />

import { webgpu as platform } from '../../platform/webgpu.js';
import { WebGpuUnavailableError } from './webgpu-unavailable.js';

export { WebGpuUnavailableError, type WebGpuUnavailableReason } from './webgpu-unavailable.js';

export interface WebGpuDeviceOptions {
  /** An adapter or device obtained elsewhere (a browser app's own, a test's). */
  device?: GPUDevice;
  adapter?: GPUAdapter;
  /**
   * Node only: flags for Dawn's `create()` (e.g. `['backend=vulkan']`). By default the platform's
   * native backend is tried first, then on Linux Dawn's OpenGL ES backend in compatibility mode
   * (which runs on Mesa's llvmpipe when there is no GPU).
   */
  dawnFlags?: string[];
  powerPreference?: GPUPowerPreference;
  /** Use `shader-f16` for f16 weights when the adapter offers it (default true). */
  f16?: boolean;
}

export interface AcquiredDevice {
  device: GPUDevice;
  adapter: GPUAdapter | null;
  /** Whether `shader-f16` is enabled on the device. */
  f16: boolean;
  /** e.g. "llvmpipe via OpenGL ES, compatibility mode". */
  description: string;
}

/**
 * Whether a hardware GPU may be present: false only where we can tell there is none (Node on Linux
 * without a GPU device node), so 'auto' need not start a software adapter to find out.
 */
export const mayHaveHardwareGpu = (): Promise<boolean> => platform.mayHaveHardwareGpu();

function describe(adapter: GPUAdapter, via: string | null, compat: boolean): string {
  const info = adapter.info;
  const name = info.description || info.device || [info.vendor, info.architecture].filter(Boolean).join(' ') || 'unknown adapter';
  // Mesa's software rasterizer names itself in the device string; say so plainly.
  const label = /llvmpipe/i.test(`${info.device} ${info.description}`) ? 'llvmpipe' : name;
  return `${label}${via ? ` via ${via}` : ''}${compat ? ', compatibility mode' : ''}`;
}

/** Finds an adapter (browser `navigator.gpu`, or Dawn in Node) and opens a device with its real limits. */
export async function acquireDevice(opts: WebGpuDeviceOptions = {}): Promise<AcquiredDevice> {
  if (opts.device) {
    return { device: opts.device, adapter: opts.adapter ?? null, f16: opts.device.features.has('shader-f16'), description: opts.adapter ? describe(opts.adapter, null, false) : 'a given device' };
  }
  let adapter = opts.adapter ?? null;
  let via: string | null = null;
  let compat = false;
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (!adapter && nav?.gpu && !opts.dawnFlags) {
    adapter = await nav.gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
    if (!adapter && !platform.fallbackAdapter) throw new WebGpuUnavailableError('no-adapter', 'WebGPU: this browser offers navigator.gpu but no adapter (blocklisted GPU or disabled hardware acceleration); use the cpu backend');
  }
  if (!adapter) {
    if (!platform.fallbackAdapter) throw new WebGpuUnavailableError('no-webgpu', 'WebGPU: this environment has no navigator.gpu (a browser without WebGPU, or WebGPU disabled); use the cpu backend');
    ({ adapter, via, compat } = await platform.fallbackAdapter(opts));
  }
  const f16 = opts.f16 !== false && adapter.features.has('shader-f16');
  const l = adapter.limits;
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({
      requiredFeatures: f16 ? ['shader-f16'] : [],
      requiredLimits: {
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxBufferSize: l.maxBufferSize,
        maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      },
    });
  } catch (e) {
    throw new WebGpuUnavailableError('no-device', `WebGPU: the adapter (${describe(adapter, via, compat)}) refused to open a device: ${(e as Error).message}`, { cause: e });
  }
  return { device, adapter, f16, description: describe(adapter, via, compat) };
}
