import { describe, expect, it } from 'vitest';
import { blobByteSource, memoryByteSource, type ByteSource } from './byte-source.js';

const bytes = Uint8Array.from({ length: 32 }, (_, i) => i * 3);

describe.each([
  ['memory', () => memoryByteSource('mem.bin', bytes)],
  ['blob', () => blobByteSource('mem.bin', new Blob([bytes]))],
] as [string, () => ByteSource][])('%sByteSource', (_, make) => {
  it('reads exact ranges, with and without a destination buffer', async () => {
    const src = make();
    expect(src.size).toBe(32);
    expect(await src.read(4, 3)).toEqual(bytes.subarray(4, 7));
    const buf = new Uint8Array(10);
    const out = await src.read(30, 2, buf);
    expect(out.buffer).toBe(buf.buffer);
    expect(out).toEqual(bytes.subarray(30, 32));
    expect((await src.read(32, 0)).length).toBe(0);
  });

  it('rejects out-of-range reads naming the source', async () => {
    const src = make();
    await expect(src.read(30, 4)).rejects.toThrow('mem.bin: read of 4 bytes at offset 30 goes past the end (size 32 bytes)');
    await expect(src.read(-1, 1)).rejects.toThrow(/mem\.bin: invalid read/);
    await expect(src.read(0.5, 1)).rejects.toThrow(/mem\.bin: invalid read/);
    await expect(src.read(0, 8, new Uint8Array(4))).rejects.toThrow(/destination buffer holds 4 bytes, need 8/);
  });
});
