/**
 * GGUF reader (versions 2 and 3; https://github.com/ggml-org/ggml/blob/master/docs/gguf.md).
 * Layout, little-endian: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the
 * metadata key/values, the tensor infos (name, n_dims, dims with the fastest-varying first, ggml
 * type, offset into the data section), padding to `general.alignment`, then the data section.
 *
 * Every count, length, type, offset and size is checked against the file before it is used (GGUF
 * parsers have had integer overflows in tensor sizes, unbounded string lengths and bad alignment),
 * and each failure names the file and the problem. Only the header is read; tensor bytes are read
 * on demand. Browser-safe: no Node imports.
 */
import type { ByteSource } from './byte-source.js';
import type { DType } from '../tensor/dtype.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;

export const GGUFValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GGUFValueType = (typeof GGUFValueType)[keyof typeof GGUFValueType];
const VALUE_TYPE_NAMES = Object.fromEntries(Object.entries(GGUFValueType).map(([k, v]) => [v, k])) as Record<number, string>;
const SCALAR_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** A metadata value: numbers (64-bit integers beyond 2^53 stay bigint), booleans, strings, arrays. */
export type GGUFValue = number | bigint | boolean | string | GGUFValue[];

export interface GGUFMetadataEntry {
  type: GGUFValueType;
  /** Element type, for arrays. */
  itemType?: GGUFValueType;
  value: GGUFValue;
}

/** ggml tensor types: id -> name, values per block, bytes per block. */
export const GGML_TYPES: Readonly<Record<number, { name: string; blockSize: number; blockBytes: number; dtype: DType | null }>> = {
  0: { name: 'F32', blockSize: 1, blockBytes: 4, dtype: 'f32' },
  1: { name: 'F16', blockSize: 1, blockBytes: 2, dtype: 'f16' },
  2: { name: 'Q4_0', blockSize: 32, blockBytes: 18, dtype: 'q4_0' },
  3: { name: 'Q4_1', blockSize: 32, blockBytes: 20, dtype: 'q4_1' },
  6: { name: 'Q5_0', blockSize: 32, blockBytes: 22, dtype: null },
  7: { name: 'Q5_1', blockSize: 32, blockBytes: 24, dtype: null },
  8: { name: 'Q8_0', blockSize: 32, blockBytes: 34, dtype: 'q8_0' },
  9: { name: 'Q8_1', blockSize: 32, blockBytes: 36, dtype: null },
  10: { name: 'Q2_K', blockSize: 256, blockBytes: 84, dtype: null },
  11: { name: 'Q3_K', blockSize: 256, blockBytes: 110, dtype: null },
  12: { name: 'Q4_K', blockSize: 256, blockBytes: 144, dtype: 'q4_k' },
  13: { name: 'Q5_K', blockSize: 256, blockBytes: 176, dtype: null },
  14: { name: 'Q6_K', blockSize: 256, blockBytes: 210, dtype: 'q6_k' },
  15: { name: 'Q8_K', blockSize: 256, blockBytes: 292, dtype: null },
  24: { name: 'I8', blockSize: 1, blockBytes: 1, dtype: 'i8' },
  25: { name: 'I16', blockSize: 1, blockBytes: 2, dtype: null },
  26: { name: 'I32', blockSize: 1, blockBytes: 4, dtype: 'i32' },
  27: { name: 'I64', blockSize: 1, blockBytes: 8, dtype: null },
  28: { name: 'F64', blockSize: 1, blockBytes: 8, dtype: null },
  30: { name: 'BF16', blockSize: 1, blockBytes: 2, dtype: 'bf16' },
};
// The i-quants and other newer types: known by name for messages, sizes not needed (never loaded).
const OTHER_GGML_TYPES: Record<number, string> = {
  16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 29: 'IQ1_M', 34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
};

/** The ggml type id of a lithe dtype, for writers. */
export function ggmlTypeOf(dtype: DType): number {
  for (const [id, t] of Object.entries(GGML_TYPES)) if (t.dtype === dtype) return Number(id);
  throw new Error(`dtype '${dtype}' has no GGUF tensor type`);
}

export interface GGUFTensorInfo {
  name: string;
  /** ggml type id and name. */
  ggmlType: number;
  typeName: string;
  /** The lithe dtype, or null for ggml types lithe cannot compute with (e.g. Q5_K). */
  dtype: DType | null;
  /** GGUF order: dims[0] is the fastest-varying (a row's length). */
  dims: number[];
  /** Row-major shape as lithe (and HF) write it: dims reversed, e.g. [out, in] for a weight. */
  shape: number[];
  /** Absolute offset of the first byte in the file. */
  byteOffset: number;
  byteLength: number;
}

export interface GGUFFile {
  source: ByteSource;
  version: number;
  alignment: number;
  metadata: Map<string, GGUFMetadataEntry>;
  tensors: Map<string, GGUFTensorInfo>;
  /** Absolute offset of the data section. */
  dataOffset: number;
  /** A metadata value, or undefined. */
  get(key: string): GGUFValue | undefined;
  /** Reads a tensor's raw bytes (into `into` when given; see `ByteSource.read`). */
  read(name: string, into?: Uint8Array): Promise<Uint8Array>;
}

/** Bounds on what a real file has, so a hostile header cannot make the parser allocate without end. */
export const GGUF_LIMITS = {
  maxTensors: 1 << 20,
  maxMetadata: 1 << 20,
  /** A key's length (keys are short ASCII names). */
  maxKeyBytes: 1 << 16,
  /** One string value (chat templates, long merges). */
  maxStringBytes: 1 << 26,
  /** Elements of one metadata array. */
  maxArrayLength: 1 << 26,
  /** Arrays inside arrays. */
  maxNesting: 2,
  /** ggml's GGML_MAX_NAME: a tensor name has fewer bytes than this. */
  maxNameBytes: 64,
  maxDims: 4,
};

// ignoreBOM: a string that starts with U+FEFF (a vocabulary's BOM token) keeps it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Buffered little-endian reads over a ByteSource, failing cleanly at the end of the file. */
class Cursor {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private start = 0;

  constructor(
    private readonly src: ByteSource,
    private readonly fail: (problem: string) => never,
  ) {}

  get remaining(): number {
    return this.src.size - this.pos;
  }

  async need(n: number, what: string): Promise<number> {
    if (n > this.remaining) this.fail(`truncated: ${what} needs ${n} bytes at offset ${this.pos}, but the file ends at ${this.src.size}`);
    if (this.pos < this.start || this.pos + n > this.start + this.buf.length) {
      const len = Math.min(this.remaining, Math.max(n, 1 << 20));
      this.buf = await this.src.read(this.pos, len);
      this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
      this.start = this.pos;
    }
    const at = this.pos - this.start;
    this.pos += n;
    return at;
  }

  async u32(what: string): Promise<number> {
    const at = await this.need(4, what);
    return this.view.getUint32(at, true);
  }

  /** u64 accepted only while it fits a JS number exactly. */
  async u64(what: string): Promise<number> {
    const at = await this.need(8, what);
    const v = this.view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} is ${v}, which is absurd`);
    return Number(v);
  }

  async string(what: string, max: number): Promise<string> {
    const len = await this.u64(`the length of ${what}`);
    if (len > max) this.fail(`${what} is ${len} bytes long, more than the limit of ${max}`);
    const at = await this.need(len, what);
    try {
      return utf8.decode(this.buf.subarray(at, at + len));
    } catch {
      return this.fail(`${what} is not valid UTF-8`);
    }
  }

  async scalar(type: number, what: string): Promise<GGUFValue> {
    const at = await this.need(SCALAR_BYTES[type], what);
    const v = this.view;
    switch (type) {
      case GGUFValueType.UINT8: return v.getUint8(at);
      case GGUFValueType.INT8: return v.getInt8(at);
      case GGUFValueType.UINT16: return v.getUint16(at, true);
      case GGUFValueType.INT16: return v.getInt16(at, true);
      case GGUFValueType.UINT32: return v.getUint32(at, true);
      case GGUFValueType.INT32: return v.getInt32(at, true);
      case GGUFValueType.FLOAT32: return v.getFloat32(at, true);
      case GGUFValueType.FLOAT64: return v.getFloat64(at, true);
      case GGUFValueType.BOOL: {
        const b = v.getUint8(at);
        if (b > 1) this.fail(`${what} is a bool with byte value ${b} (must be 0 or 1)`);
        return b === 1;
      }
      case GGUFValueType.UINT64: return small(v.getBigUint64(at, true));
      default: return small(v.getBigInt64(at, true));
    }
  }
}

const small = (v: bigint): number | bigint => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);

export async function parseGGUF(source: ByteSource): Promise<GGUFFile> {
  const file = source.name;
  const fail = (problem: string): never => {
    throw new Error(`${file}: ${problem}`);
  };
  const r = new Cursor(source, fail);
  if (source.size < 24) fail(`not a GGUF file: it has ${source.size} bytes, fewer than the 24-byte GGUF header`);
  const magic = await r.u32('the magic');
  if (magic !== GGUF_MAGIC) fail(`not a GGUF file: it starts with 0x${magic.toString(16).padStart(8, '0')}, not "GGUF"`);
  const version = await r.u32('the version');
  if (version !== 2 && version !== 3) fail(`GGUF version ${version} is not supported (lithe reads versions 2 and 3)`);
  const nTensors = await r.u64('the tensor count');
  const nKV = await r.u64('the metadata count');
  // Each tensor info takes at least 32 bytes and each key/value at least 13: counts the file cannot hold are lies.
  if (nTensors > GGUF_LIMITS.maxTensors || nTensors * 32 > r.remaining) fail(`the header claims ${nTensors} tensors, which cannot fit in the file (${source.size} bytes)`);
  if (nKV > GGUF_LIMITS.maxMetadata || nKV * 13 > r.remaining) fail(`the header claims ${nKV} metadata entries, which cannot fit in the file (${source.size} bytes)`);

  const metadata = new Map<string, GGUFMetadataEntry>();
  for (let i = 0; i < nKV; i++) {
    const key = await r.string(`metadata key #${i}`, GGUF_LIMITS.maxKeyBytes);
    if (metadata.has(key)) fail(`metadata key '${key}' appears more than once`);
    const type = await r.u32(`the type of metadata '${key}'`);
    metadata.set(key, await readValue(r, type, `metadata '${key}'`, 0, fail));
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.get('general.alignment');
  if (al !== undefined) {
    const v = al.value;
    if (al.type !== GGUFValueType.UINT32 || typeof v !== 'number' || v === 0 || (v & (v - 1)) !== 0) {
      fail(`general.alignment must be a u32 power of two, got ${VALUE_TYPE_NAMES[al.type]} ${String(v)}`);
    }
    alignment = v as number;
  }

  const infos: (Omit<GGUFTensorInfo, 'byteOffset'> & { offset: number })[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = await r.string(`the name of tensor #${i}`, GGUF_LIMITS.maxKeyBytes);
    const bad = (problem: string): never => fail(`tensor '${name}': ${problem}`);
    if (new TextEncoder().encode(name).length >= GGUF_LIMITS.maxNameBytes) bad(`the name has ${name.length} bytes; ggml allows at most ${GGUF_LIMITS.maxNameBytes - 1}`);
    if (names.has(name)) fail(`tensor '${name}' is listed more than once`);
    names.add(name);
    const nDims = await r.u32(`the dimension count of tensor '${name}'`);
    if (nDims < 1 || nDims > GGUF_LIMITS.maxDims) bad(`${nDims} dimensions (ggml allows 1 to ${GGUF_LIMITS.maxDims})`);
    const dims: number[] = [];
    let count = 1;
    for (let d = 0; d < nDims; d++) {
      const n = await r.u64(`dimension ${d} of tensor '${name}'`);
      if (n < 1) bad(`dimension ${d} is ${n}; every dimension must be at least 1`);
      count *= n;
      if (!Number.isSafeInteger(count)) bad(`dimensions [${[...dims, n].join(', ')}, ...] overflow: the element count exceeds 2^53`);
      dims.push(n);
    }
    const ggmlType = await r.u32(`the type of tensor '${name}'`);
    const t = GGML_TYPES[ggmlType];
    if (!t) {
      const known = OTHER_GGML_TYPES[ggmlType];
      bad(known ? `ggml type ${known} (${ggmlType}) is not supported; lithe reads ${supportedTypes()}` : `unknown ggml type ${ggmlType}`);
    }
    if (dims[0] % t.blockSize !== 0) bad(`rows of ${dims[0]} values do not fill whole ${t.name} blocks of ${t.blockSize}`);
    const byteLength = (count / t.blockSize) * t.blockBytes;
    if (!Number.isSafeInteger(byteLength)) bad(`its size in bytes overflows`);
    const offset = await r.u64(`the offset of tensor '${name}'`);
    if (offset % alignment !== 0) bad(`data offset ${offset} is not a multiple of the alignment ${alignment}`);
    infos.push({ name, ggmlType, typeName: t.name, dtype: t.dtype, dims, shape: [...dims].reverse(), offset, byteLength });
  }

  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  if (dataOffset > source.size && nTensors > 0) fail(`truncated: the data section would start at ${dataOffset}, past the end of the file (${source.size} bytes)`);
  const dataSize = source.size - dataOffset;
  const tensors = new Map<string, GGUFTensorInfo>();
  for (const { offset, ...t } of infos) {
    if (offset + t.byteLength > dataSize) {
      fail(`tensor '${t.name}': its ${t.byteLength} bytes at data offset ${offset} run past the end of the file (the data section has ${Math.max(0, dataSize)} bytes); is the file truncated?`);
    }
    tensors.set(t.name, { ...t, byteOffset: dataOffset + offset });
  }
  const sorted = [...tensors.values()].sort((a, b) => a.byteOffset - b.byteOffset);
  for (let i = 1; i < sorted.length; i++) {
    const [prev, cur] = [sorted[i - 1], sorted[i]];
    if (cur.byteOffset < prev.byteOffset + prev.byteLength) fail(`tensors '${prev.name}' and '${cur.name}' overlap in the data section`);
  }

  return {
    source,
    version,
    alignment,
    metadata,
    tensors,
    dataOffset,
    get: (key) => metadata.get(key)?.value,
    async read(name, into) {
      const info = tensors.get(name);
      if (!info) throw new Error(`${file}: no tensor named '${name}'`);
      return source.read(info.byteOffset, info.byteLength, into);
    },
  };
}

function supportedTypes(): string {
  return Object.values(GGML_TYPES).filter((t) => t.dtype).map((t) => t.name).join(', ');
}

async function readValue(r: Cursor, type: number, what: string, depth: number, fail: (p: string) => never): Promise<GGUFMetadataEntry> {
  if (type === GGUFValueType.STRING) return { type, value: await r.string(what, GGUF_LIMITS.maxStringBytes) };
  if (type in SCALAR_BYTES) return { type: type as GGUFValueType, value: await r.scalar(type, what) };
  if (type !== GGUFValueType.ARRAY) return fail(`${what} has unknown value type ${type}`);
  if (depth >= GGUF_LIMITS.maxNesting) fail(`${what} nests arrays more than ${GGUF_LIMITS.maxNesting} deep`);
  const itemType = await r.u32(`the element type of ${what}`);
  if (!(itemType in SCALAR_BYTES) && itemType !== GGUFValueType.STRING && itemType !== GGUFValueType.ARRAY) fail(`${what} is an array of unknown value type ${itemType}`);
  const n = await r.u64(`the length of ${what}`);
  // Strings and arrays take at least 8 bytes each (their length), scalars their size.
  const min = SCALAR_BYTES[itemType] ?? 8;
  if (n > GGUF_LIMITS.maxArrayLength || n * min > r.remaining) fail(`${what} claims ${n} elements of ${VALUE_TYPE_NAMES[itemType]}, which cannot fit in the rest of the file (${r.remaining} bytes)`);
  const value: GGUFValue[] = new Array(n);
  for (let i = 0; i < n; i++) value[i] = (await readValue(r, itemType, `${what}[${i}]`, depth + 1, fail)).value;
  return { type: GGUFValueType.ARRAY, itemType: itemType as GGUFValueType, value };
}
