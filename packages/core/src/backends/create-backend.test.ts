import { describe, expect, it } from 'vitest';
import { CpuBackend } from './cpu/cpu-backend.js';
import { onTheCpuForTests as onTheCpu } from './create-backend.js';
import { WasmBackend, type WasmBackendOptions } from './wasm/wasm-backend.js';

describe("backend 'auto' on the CPU", () => {
  it('tries wasm on 1 thread when threads cannot start, before the TypeScript backend', async () => {
    const asked: (number | undefined)[] = [];
    const noThreads = async (o: WasmBackendOptions) => {
      asked.push(o.threads);
      if (o.threads !== 1) throw new Error('no SharedArrayBuffer');
      return WasmBackend.create(o);
    };
    const one = await onTheCpu('no GPU found', { threads: 2 }, noThreads);
    expect(asked).toEqual([2, 1]);
    expect(one.backend.name).toBe('wasm');
    expect(one.description).toBe('wasm (1 thread: threads failed to start: no SharedArrayBuffer; no GPU found)');
    await one.backend.close?.();

    const none = await onTheCpu('no GPU found', {}, async () => {
      throw new Error('no WebAssembly');
    });
    expect(none.backend).toBeInstanceOf(CpuBackend);
    expect(none.description).toBe('cpu (no GPU found; the wasm backend is unavailable: no WebAssembly)');
  });
});
