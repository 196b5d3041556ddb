/**
 * GGUF v3 writer: metadata of any GGUF value type and tensors at aligned offsets. The header is
 * built first (every tensor's offset follows from its type and shape), then tensor data is streamed
 * one tensor at a time, so multi-gigabyte files never sit in memory. Browser-safe.
 */
import { GGML_TYPES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUFValueType, type GGUFValue } from './gguf.js';

export interface GGUFWriterTensor {
  name: string;
  ggmlType: number;
  /** Row-major shape (HF order); written reversed, fastest-varying first. */
  shape: number[];
}

interface KV {
  key: string;
  type: GGUFValueType;
  itemType?: GGUFValueType;
  value: GGUFValue;
}

const SCALAR_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

class ByteBuilder {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  u32(v: number) {
    const at = this.room(4);
    this.view.setUint32(at, v, true);
  }
  u64(v: number) {
    const at = this.room(8);
    this.view.setBigUint64(at, BigInt(v), true);
  }
  bytes(b: Uint8Array) {
    const at = this.room(b.length);
    this.buf.set(b, at);
  }
  string(s: string) {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  scalar(type: number, v: GGUFValue) {
    const at = this.room(SCALAR_BYTES[type]);
    const d = this.view;
    switch (type) {
      case 0: d.setUint8(at, v as number); break;
      case 1: d.setInt8(at, v as number); break;
      case 2: d.setUint16(at, v as number, true); break;
      case 3: d.setInt16(at, v as number, true); break;
      case 4: d.setUint32(at, v as number, true); break;
      case 5: d.setInt32(at, v as number, true); break;
      case 6: d.setFloat32(at, v as number, true); break;
      case 7: d.setUint8(at, v ? 1 : 0); break;
      case 10: d.setBigUint64(at, BigInt(v as number), true); break;
      case 11: d.setBigInt64(at, BigInt(v as number), true); break;
      case 12: d.setFloat64(at, v as number, true); break;
    }
  }
  pad(alignment: number) {
    this.room((alignment - (this.length % alignment)) % alignment);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

export class GGUFWriter {
  private readonly kvs = new Map<string, KV>();
  private readonly tensorList: GGUFWriterTensor[] = [];

  constructor(readonly alignment = GGUF_DEFAULT_ALIGNMENT) {
    if (alignment <= 0 || (alignment & (alignment - 1)) !== 0) throw new Error(`GGUF alignment must be a power of two, got ${alignment}`);
    if (alignment !== GGUF_DEFAULT_ALIGNMENT) this.set('general.alignment', GGUFValueType.UINT32, alignment);
  }

  set(key: string, type: GGUFValueType, value: GGUFValue, itemType?: GGUFValueType): this {
    this.kvs.set(key, { key, type, value, itemType });
    return this;
  }
  /** Leaves a key out (e.g. to write a file that lacks it). */
  delete(key: string): this {
    this.kvs.delete(key);
    return this;
  }
  string(key: string, v: string): this { return this.set(key, GGUFValueType.STRING, v); }
  u32(key: string, v: number): this { return this.set(key, GGUFValueType.UINT32, v); }
  f32(key: string, v: number): this { return this.set(key, GGUFValueType.FLOAT32, v); }
  bool(key: string, v: boolean): this { return this.set(key, GGUFValueType.BOOL, v); }
  array(key: string, itemType: GGUFValueType, values: GGUFValue[]): this { return this.set(key, GGUFValueType.ARRAY, values, itemType); }

  addTensor(t: GGUFWriterTensor): this {
    if (!GGML_TYPES[t.ggmlType]) throw new Error(`GGUF writer: unknown ggml type ${t.ggmlType} for '${t.name}'`);
    this.tensorList.push(t);
    return this;
  }

  get tensors(): readonly GGUFWriterTensor[] {
    return this.tensorList;
  }

  /** Bytes of a tensor's data. */
  static tensorBytes(t: GGUFWriterTensor): number {
    const { blockSize, blockBytes } = GGML_TYPES[t.ggmlType];
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.shape[t.shape.length - 1] % blockSize !== 0) throw new Error(`GGUF writer: '${t.name}' rows of ${t.shape[t.shape.length - 1]} do not fill ${GGML_TYPES[t.ggmlType].name} blocks of ${blockSize}`);
    return (n / blockSize) * blockBytes;
  }

  /** The header padded to the alignment, each tensor's offset in the data section, and the data size. */
  header(): { bytes: Uint8Array; offsets: number[]; dataBytes: number } {
    const b = new ByteBuilder();
    b.u32(GGUF_MAGIC);
    b.u32(3);
    b.u64(this.tensorList.length);
    b.u64(this.kvs.size);
    for (const kv of this.kvs.values()) {
      b.string(kv.key);
      b.u32(kv.type);
      writeValue(b, kv.type, kv.value, kv.itemType);
    }
    const offsets: number[] = [];
    let offset = 0;
    for (const t of this.tensorList) {
      b.string(t.name);
      b.u32(t.shape.length);
      for (const d of [...t.shape].reverse()) b.u64(d);
      b.u32(t.ggmlType);
      b.u64(offset);
      offsets.push(offset);
      offset += GGUFWriter.tensorBytes(t);
      offset = Math.ceil(offset / this.alignment) * this.alignment;
    }
    b.pad(this.alignment);
    return { bytes: b.result(), offsets, dataBytes: offset };
  }

  /**
   * Writes the whole file to `sink`: the header, then each tensor's bytes from `data` (called in
   * order, one at a time) and the padding after it.
   */
  async write(data: (t: GGUFWriterTensor, index: number) => Promise<Uint8Array> | Uint8Array, sink: (chunk: Uint8Array) => Promise<void> | void): Promise<void> {
    const { bytes } = this.header();
    await sink(bytes);
    for (let i = 0; i < this.tensorList.length; i++) {
      const t = this.tensorList[i];
      const chunk = await data(t, i);
      const expected = GGUFWriter.tensorBytes(t);
      if (chunk.length !== expected) throw new Error(`GGUF writer: '${t.name}' got ${chunk.length} bytes, ${GGML_TYPES[t.ggmlType].name}[${t.shape.join(', ')}] needs ${expected}`);
      await sink(chunk);
      const pad = (this.alignment - (expected % this.alignment)) % this.alignment;
      if (pad) await sink(new Uint8Array(pad));
    }
  }
}

function writeValue(b: ByteBuilder, type: GGUFValueType, value: GGUFValue, itemType?: GGUFValueType): void {
  if (type === GGUFValueType.STRING) return b.string(value as string);
  if (type !== GGUFValueType.ARRAY) return b.scalar(type, value);
  if (itemType === undefined) throw new Error('GGUF writer: an array needs an element type');
  const items = value as GGUFValue[];
  b.u32(itemType);
  b.u64(items.length);
  for (const v of items) writeValue(b, itemType, v);
}
