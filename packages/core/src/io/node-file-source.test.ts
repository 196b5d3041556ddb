import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openFileSource } from './node-file-source.js';
import { parseSafetensors } from './safetensors.js';
import { buildSafetensors } from './test-helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lithe-io-'));
});
afterAll(async () => {
  vi.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

describe('openFileSource', () => {
  it('reads ranges, into caller buffers too', async () => {
    const path = join(dir, 'bytes.bin');
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    await writeFile(path, bytes);
    const src = await openFileSource(path);
    try {
      expect(src.size).toBe(256);
      expect(src.name).toBe(path);
      expect(await src.read(10, 5)).toEqual(bytes.subarray(10, 15));
      const buf = new Uint8Array(8).fill(99);
      const out = await src.read(250, 6, buf);
      expect(out.buffer).toBe(buf.buffer);
      expect(out).toEqual(bytes.subarray(250));
      expect(buf[7]).toBe(99);
      expect((await src.read(256, 0)).length).toBe(0);
    } finally {
      await src.close?.();
      await src.close?.(); // idempotent
    }
  });

  it('names the file in errors', async () => {
    const missing = join(dir, 'missing.safetensors');
    await expect(openFileSource(missing)).rejects.toThrow(`${missing}: cannot open file: no such file`);
    await expect(openFileSource(dir)).rejects.toThrow(dir);

    const path = join(dir, 'small.bin');
    await writeFile(path, new Uint8Array(10));
    const src = await openFileSource(path);
    await expect(src.read(8, 4)).rejects.toThrow(`${path}: read of 4 bytes at offset 8 goes past the end (size 10 bytes)`);
    await expect(src.read(0, 4, new Uint8Array(2))).rejects.toThrow(/destination buffer holds 2 bytes, need 4/);
    await src.close?.();
    await expect(src.read(0, 1)).rejects.toThrow(`${path}: read after close`);
  });

  it('reads only the header and the requested tensor, never the whole file', async () => {
    const big = 1 << 20; // 1M f32 elements = 4 MiB per tensor
    const built = buildSafetensors([
      { name: 'before', dtype: 'F32', shape: [big] },
      { name: 'target', dtype: 'F32', shape: [1024, 1024] },
      { name: 'after', dtype: 'F32', shape: [big] },
    ]);
    const path = join(dir, 'large.safetensors');
    await writeFile(path, built.bytes);

    // Spy on the real positional reads the FileHandle performs.
    const probe = await open(path, 'r');
    const readSpy = vi.spyOn(Object.getPrototypeOf(probe) as { read: (...a: unknown[]) => unknown }, 'read');
    await probe.close();

    const src = await openFileSource(path);
    try {
      const file = await parseSafetensors(src);
      const dataStart = built.bytes.length - built.data.length;
      expectReadsWithin(readSpy.mock.calls, 0, dataStart); // prefix + header only

      readSpy.mockClear();
      const target = await file.read('target');
      // Buffer.equals: toEqual walks 4 MiB element by element and takes seconds.
      expect(Buffer.from(target).equals(built.tensors.get('target')!)).toBe(true);
      const info = file.tensors.get('target')!;
      expectReadsWithin(readSpy.mock.calls, info.byteOffset, info.byteOffset + info.byteLength);
      expect(info.byteLength).toBeLessThan(built.bytes.length / 2);
    } finally {
      readSpy.mockRestore();
      await src.close?.();
    }
  });
});

/** Every FileHandle.read(buffer, offset, length, position) call stayed inside [start, end). */
function expectReadsWithin(calls: unknown[][], start: number, end: number): void {
  expect(calls.length).toBeGreaterThan(0);
  for (const call of calls) {
    const [, , length, position] = call as [unknown, number, number, number];
    expect(position).toBeGreaterThanOrEqual(start);
    expect(position + length).toBeLessThanOrEqual(end);
  }
}
