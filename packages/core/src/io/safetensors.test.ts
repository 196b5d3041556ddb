import { describe, expect, it } from 'vitest';
import { blobByteSource, memoryByteSource } from './byte-source.js';
import { parseSafetensors } from './safetensors.js';
import { buildSafetensors, encodeSafetensors } from './test-helpers.js';

const FILE = 'model.safetensors';
const parse = (bytes: Uint8Array) => parseSafetensors(memoryByteSource(FILE, bytes));

/** Asserts parsing fails with a message naming the file and matching every pattern. */
async function expectRejected(bytes: Uint8Array, ...patterns: RegExp[]): Promise<void> {
  const err = await parse(bytes).then(
    () => null,
    (e: unknown) => e as Error,
  );
  expect(err, 'expected the file to be rejected').toBeInstanceOf(Error);
  expect(err!.message).toContain(FILE);
  for (const p of patterns) expect(err!.message).toMatch(p);
}

const entry = (dtype: string, shape: number[], data_offsets: number[]) => ({ dtype, shape, data_offsets });
/** A file with `header` and `dataBytes` zero bytes of data. */
const withData = (header: unknown, dataBytes: number) => encodeSafetensors(header, new Uint8Array(dataBytes));

describe('parseSafetensors: valid files', () => {
  it('round-trips f32, f16, bf16, i8, u8 and i32 tensors and the metadata', async () => {
    const built = buildSafetensors(
      [
        { name: 'w.f32', dtype: 'F32', shape: [3, 5] },
        { name: 'w.f16', dtype: 'F16', shape: [7] },
        { name: 'w.bf16', dtype: 'BF16', shape: [2, 3, 4] },
        { name: 'w.i8', dtype: 'I8', shape: [9] },
        { name: 'w.u8', dtype: 'U8', shape: [4, 1] },
        { name: 'w.i32', dtype: 'I32', shape: [2] },
      ],
      { format: 'pt', note: 'unit test' },
    );
    const file = await parse(built.bytes);

    expect(file.metadata).toEqual({ format: 'pt', note: 'unit test' });
    expect([...file.tensors.keys()].sort()).toEqual(['w.bf16', 'w.f16', 'w.f32', 'w.i32', 'w.i8', 'w.u8']);
    const f32 = file.tensors.get('w.f32')!;
    expect(f32).toMatchObject({ dtype: 'f32', shape: [3, 5], byteLength: 60 });
    expect(file.tensors.get('w.bf16')).toMatchObject({ dtype: 'bf16', shape: [2, 3, 4], byteLength: 48 });
    expect(file.tensors.get('w.i8')?.dtype).toBe('i8');
    // byteOffset is absolute: prefix + header + offset in the data section.
    expect(f32.byteOffset).toBe(built.bytes.length - built.data.length);

    for (const [name, expected] of built.tensors) {
      expect(await file.read(name)).toEqual(expected);
    }
  });

  it('reads into a caller-provided buffer', async () => {
    const built = buildSafetensors([{ name: 'a', dtype: 'F32', shape: [4] }]);
    const file = await parse(built.bytes);
    const buf = new Uint8Array(64);
    const out = await file.read('a', buf);
    expect(out.buffer).toBe(buf.buffer);
    expect(out).toEqual(built.tensors.get('a'));
  });

  it('works the same over a Blob', async () => {
    const built = buildSafetensors([
      { name: 'x', dtype: 'F16', shape: [10] },
      { name: 'y', dtype: 'I8', shape: [3] },
    ]);
    const file = await parseSafetensors(blobByteSource(FILE, new Blob([built.bytes])));
    expect(await file.read('y')).toEqual(built.tensors.get('y'));
    expect(await file.read('x')).toEqual(built.tensors.get('x'));
  });

  it('accepts scalars, empty tensors, no metadata and unpadded headers', async () => {
    const data = new Uint8Array([1, 2, 3, 4]);
    const header = { s: entry('F32', [], [0, 4]), empty: entry('F32', [0, 3], [4, 4]) };
    const file = await parse(encodeSafetensors(JSON.stringify(header), data));
    expect(file.metadata).toEqual({});
    expect(file.tensors.get('s')?.shape).toEqual([]);
    expect(await file.read('s')).toEqual(data);
    expect((await file.read('empty')).length).toBe(0);
  });
});

describe('parseSafetensors: malformed files', () => {
  const good = () => buildSafetensors([
    { name: 'a', dtype: 'F32', shape: [2, 3] },
    { name: 'b', dtype: 'F16', shape: [4] },
  ]);

  it('rejects files shorter than the length prefix', async () => {
    await expectRejected(new Uint8Array(5), /5 bytes/, /8-byte header length prefix/);
  });

  it('rejects a file cut inside the header', async () => {
    const bytes = good().bytes;
    await expectRejected(bytes.subarray(0, 20), /truncated: header says \d+ bytes but the file has only 12 after the length prefix/);
  });

  it('rejects a file cut inside the data section', async () => {
    const bytes = good().bytes;
    await expectRejected(bytes.subarray(0, bytes.length - 3), /tensor 'b'/, /past the end of the data section/, /truncated/);
  });

  it('rejects an absurd header length', async () => {
    const data = new Uint8Array(16);
    await expectRejected(encodeSafetensors('{}', data, 200n * 1024n * 1024n), /100 ?MB|104857600/, /not a safetensors file/);
    await expectRejected(encodeSafetensors('{}', data, 2n ** 63n), /absurd/);
    await expectRejected(encodeSafetensors('{}', data, 2n ** 53n), /absurd/);
  });

  it('rejects a header that is not JSON or not UTF-8', async () => {
    await expectRejected(encodeSafetensors('{"a": {"dtype": '), /not valid JSON/);
    await expectRejected(encodeSafetensors(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /not valid UTF-8/);
  });

  it('rejects a header that is JSON but not an object', async () => {
    await expectRejected(encodeSafetensors('[1, 2]'), /must be a JSON object/, /array/);
    await expectRejected(encodeSafetensors('null'), /must be a JSON object/, /null/);
    await expectRejected(encodeSafetensors('"hi"'), /must be a JSON object/);
  });

  it('rejects __metadata__ that is not an object of strings', async () => {
    await expectRejected(encodeSafetensors({ __metadata__: { version: 2 } }), /__metadata__\.version must be a string/);
    await expectRejected(encodeSafetensors({ __metadata__: ['x'] }), /__metadata__ must be an object/);
  });

  it('rejects tensor entries that are not objects or lack fields', async () => {
    await expectRejected(encodeSafetensors({ a: 3 }), /tensor 'a'/, /expected an object/);
    await expectRejected(withData({ a: { shape: [1], data_offsets: [0, 4] } }, 4), /tensor 'a': dtype must be a string/);
    await expectRejected(withData({ a: { dtype: 'F32', data_offsets: [0, 4] } }, 4), /tensor 'a': shape must be/);
    await expectRejected(withData({ a: { dtype: 'F32', shape: [1] } }, 4), /tensor 'a': data_offsets must be/);
  });

  it('rejects overlapping tensors', async () => {
    const header = { a: entry('F32', [4], [0, 16]), b: entry('F32', [2], [8, 16]) };
    await expectRejected(withData(header, 16), /'a' and 'b' overlap/);
  });

  it('rejects a byte range that does not match shape x dtype', async () => {
    const header = { w: entry('F32', [2, 3], [0, 20]) };
    await expectRejected(withData(header, 24), /tensor 'w'/, /\[2, 3\] of F32 needs 24 bytes/, /span 20/);
  });

  it('rejects offsets past the end of the data section and reversed offsets', async () => {
    await expectRejected(withData({ w: entry('U8', [8], [0, 8]) }, 4), /past the end of the data section \(4 bytes\)/);
    await expectRejected(withData({ w: entry('U8', [0], [4, 2]) }, 4), /end before they begin/);
    await expectRejected(withData({ w: entry('U8', [2], [-2, 0]) }, 4), /data_offsets must be \[begin, end\]/);
    await expectRejected(withData({ w: entry('U8', [2], [0, 2, 4]) }, 4), /data_offsets must be/);
  });

  it('rejects negative and non-integer dimensions', async () => {
    await expectRejected(withData({ w: entry('F32', [2, -1], [0, 8]) }, 8), /tensor 'w': shape must be an array of non-negative integers/, /-1/);
    await expectRejected(withData({ w: entry('F32', [1.5], [0, 4]) }, 8), /non-negative integers/, /1\.5/);
    await expectRejected(withData({ w: entry('F32', ['2'] as unknown as number[], [0, 8]) }, 8), /non-negative integers/);
  });

  it('rejects unsupported dtypes naming the tensor and dtype', async () => {
    await expectRejected(withData({ 'lm_head.weight': entry('F64', [1], [0, 8]) }, 8), /tensor 'lm_head\.weight'/, /unsupported dtype F64/, /supported: F32/);
    await expectRejected(withData({ m: entry('BOOL', [1], [0, 1]) }, 1), /unsupported dtype BOOL/);
    await expectRejected(withData({ m: entry('F8_E4M3', [1], [0, 1]) }, 1), /unsupported dtype F8_E4M3/);
    // lithe's own lowercase names are not safetensors dtype names.
    await expectRejected(withData({ m: entry('f32', [1], [0, 4]) }, 4), /unsupported dtype f32/);
  });

  it('rejects a tensor listed twice (JSON.parse would keep only one)', async () => {
    const text = '{"a": {"dtype":"U8","shape":[1],"data_offsets":[0,1]}, "a": {"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
    await expectRejected(withData(text, 2), /tensor 'a' is listed more than once/);
    // Equal keys nested inside different entries are fine.
    const ok = '{"a": {"dtype":"U8","shape":[1],"data_offsets":[0,1]}, "b": {"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
    expect((await parse(withData(ok, 2))).tensors.size).toBe(2);
  });

  it('reports reads of unknown tensors', async () => {
    const file = await parse(good().bytes);
    await expect(file.read('nope')).rejects.toThrow(/model\.safetensors: no tensor named 'nope' in this file; it has 'a', 'b'/);
  });
});
