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
