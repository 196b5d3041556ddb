/// <reference types="@webgpu/types" />

/** Why WebGPU could not be used; `message` says what to do about it. */
export type WebGpuUnavailableReason = 'no-webgpu' | 'missing-package' | 'missing-libraries' | 'no-adapter' | 'no-device';

export class WebGpuUnavailableError extends Error {
  constructor(
    readonly reason: WebGpuUnavailableReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'WebGpuUnavailableError';
  }
}

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

const MESA_PACKAGES = 'libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri';

const isNode = (): boolean => typeof process !== 'undefined' && typeof process.versions?.node === 'string';

/** Dawn's GPU objects must outlive their devices (they poll for completed work), so they are kept here. */
const dawnInstances = new Set<GPU>();

interface DawnModule {
  create(flags: string[]): GPU;
  globals: object;
}

async function importDawn(): Promise<DawnModule> {
  try {
    // Optional peer dependency: loaded only when WebGPU is asked for in Node.
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
async function hasMesaLibraries(): Promise<boolean> {
  const fs = await import('node:fs');
  const dirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu'];
  const found = (lib: string) => dirs.some((d) => fs.existsSync(`${d}/${lib}`));
  return found('libEGL.so.1') && found('libGLESv2.so.2');
}

/** Linux: whether a GPU device node exists at all (if not, only the GLES/llvmpipe path can work). */
async function hasGpuDeviceNode(): Promise<boolean> {
  const fs = await import('node:fs');
  try {
    if (fs.readdirSync('/dev/dri').some((n) => n.startsWith('renderD'))) return true;
  } catch {
    // no /dev/dri
  }
  return fs.existsSync('/dev/nvidia0') || fs.existsSync('/dev/dxg');
}

/**
 * Whether a hardware GPU may be present: false only where we can tell there is none (Node on Linux
 * without a GPU device node), so 'auto' need not start a software adapter to find out.
 */
export async function mayHaveHardwareGpu(): Promise<boolean> {
  const node = typeof process !== 'undefined' && !!process.versions?.node;
  return !(node && process.platform === 'linux') || hasGpuDeviceNode();
}

function describe(adapter: GPUAdapter, via: string | null, compat: boolean): string {
  const info = adapter.info;
  const name = info.description || info.device || [info.vendor, info.architecture].filter(Boolean).join(' ') || 'unknown adapter';
  // Mesa's software rasterizer names itself in the device string; say so plainly.
  const label = /llvmpipe/i.test(`${info.device} ${info.description}`) ? 'llvmpipe' : name;
  return `${label}${via ? ` via ${via}` : ''}${compat ? ', compatibility mode' : ''}`;
}

async function nodeAdapter(opts: WebGpuDeviceOptions): Promise<{ adapter: GPUAdapter; via: string | null; compat: boolean }> {
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
    if (!linux || (await hasGpuDeviceNode())) attempts.push({ flags: [], compat: false, via: null });
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
  if (linux && !(await hasMesaLibraries())) {
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
    if (!adapter && !isNode()) throw new WebGpuUnavailableError('no-adapter', 'WebGPU: this browser offers navigator.gpu but no adapter (blocklisted GPU or disabled hardware acceleration); use the cpu backend');
  }
  if (!adapter) {
    if (!isNode()) throw new WebGpuUnavailableError('no-webgpu', 'WebGPU: this environment has no navigator.gpu (a browser without WebGPU, or WebGPU disabled); use the cpu backend');
    ({ adapter, via, compat } = await nodeAdapter(opts));
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
