/// <reference types="@webgpu/types" />
import { existsSync, readdirSync } from 'node:fs';
import { WebGpuUnavailableError } from '../backends/webgpu/webgpu-unavailable.js';
import type { FallbackAdapter, WebGpuPlatform } from './types.js';

/** Node: WebGPU through Dawn (the optional `webgpu` package), natively or on Mesa's llvmpipe. */

const MESA_PACKAGES = 'libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri';

/** Dawn's GPU objects must outlive their devices (they poll for completed work), so they are kept here. */
const dawnInstances = new Set<GPU>();

interface DawnModule {
  create(flags: string[]): GPU;
  globals: object;
}

async function importDawn(): Promise<DawnModule> {
  try {
    // Optional peer dependency: loaded only when WebGPU is asked for.
    const name = 'webgpu';
    return (await import(/* @vite-ignore */ name)) as DawnModule;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new WebGpuUnavailableError(
        'missing-package',
        "WebGPU in Node needs the optional package 'webgpu' (Dawn), which is not installed: run `pnpm add webgpu` (or `npm install webgpu`) next to @lithe/core, or use --backend cpu",
        { cause: e },
      );
    }
    throw new WebGpuUnavailableError('missing-libraries', `the 'webgpu' package is installed but Dawn failed to load: ${(e as Error).message}`, { cause: e });
  }
}

/** Linux: whether the EGL/GLES libraries Dawn's OpenGL ES backend loads are present. */
function hasMesaLibraries(): boolean {
  const dirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu'];
  const found = (lib: string) => dirs.some((d) => existsSync(`${d}/${lib}`));
  return found('libEGL.so.1') && found('libGLESv2.so.2');
}

/** Linux: whether a GPU device node exists at all (if not, only the GLES/llvmpipe path can work). */
function hasGpuDeviceNode(): boolean {
  try {
    if (readdirSync('/dev/dri').some((n) => n.startsWith('renderD'))) return true;
  } catch {
    // no /dev/dri
  }
  return existsSync('/dev/nvidia0') || existsSync('/dev/dxg');
}

async function mayHaveHardwareGpu(): Promise<boolean> {
  return process.platform !== 'linux' || hasGpuDeviceNode();
}

async function dawnAdapter(opts: { dawnFlags?: string[]; powerPreference?: GPUPowerPreference }): Promise<FallbackAdapter> {
  const dawn = await importDawn();
  const linux = process.platform === 'linux';
  // Dawn's OpenGL ES backend needs an EGL platform; without a display, surfaceless is the one that works.
  if (linux && !process.env.EGL_PLATFORM) process.env.EGL_PLATFORM = 'surfaceless';
  Object.assign(globalThis, dawn.globals);

  const attempts: { flags: string[]; compat: boolean; via: string | null }[] = [];
  if (opts.dawnFlags) {
    const gles = opts.dawnFlags.some((f) => /backend=opengl/.test(f));
    attempts.push({ flags: opts.dawnFlags, compat: gles, via: gles ? 'OpenGL ES' : null });
  } else {
    if (!linux || hasGpuDeviceNode()) attempts.push({ flags: [], compat: false, via: null });
    if (linux) attempts.push({ flags: ['backend=opengles'], compat: true, via: 'OpenGL ES' });
  }
  for (const a of attempts) {
    const gpu = dawn.create(a.flags);
    const adapter = await gpu.requestAdapter({
      powerPreference: opts.powerPreference ?? 'high-performance',
      ...(a.compat ? { featureLevel: 'compatibility' } : {}),
    } as GPURequestAdapterOptions);
    if (adapter) {
      dawnInstances.add(gpu);
      return { adapter, via: a.via, compat: a.compat };
    }
  }
  if (linux && !hasMesaLibraries()) {
    throw new WebGpuUnavailableError(
      'missing-libraries',
      `WebGPU: no GPU adapter, and the EGL/GLES libraries that let Dawn run on the CPU (Mesa llvmpipe) are missing: install them with \`apt-get install -y ${MESA_PACKAGES}\` (lithe sets EGL_PLATFORM=surfaceless itself), or use --backend cpu`,
    );
  }
  throw new WebGpuUnavailableError(
    'no-adapter',
    linux
      ? `WebGPU: Dawn found no adapter (tried ${attempts.map((a) => (a.flags.length ? a.flags.join(' ') : 'the native backend')).join(', then ')}, EGL_PLATFORM=${process.env.EGL_PLATFORM}). Without a GPU, install Mesa (\`apt-get install -y ${MESA_PACKAGES}\`); with one, check its driver (Vulkan). Or use --backend cpu`
      : 'WebGPU: Dawn found no adapter on this machine; check the GPU driver, or use --backend cpu',
  );
}

export const webgpu: WebGpuPlatform = { mayHaveHardwareGpu, fallbackAdapter: dawnAdapter };
