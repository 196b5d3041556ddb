/**
 * Safetensors reader (https://huggingface.co/docs/safetensors). Layout: an 8-byte little-endian
 * header length N, N bytes of UTF-8 JSON, then the data section. The JSON maps tensor names to
 * `{ dtype, shape, data_offsets: [begin, end] }` (offsets relative to the data section) plus an
 * optional `__metadata__` object of strings. Only the header is read here; tensor bytes are read
 * on demand. Browser-safe: no Node imports.
 */
import type { ByteSource } from './byte-source.js';
import { jsonTooDeep, MAX_JSON_DEPTH } from './json-depth.js';
import { errorMessage } from './byte-source.js';
import { byteSize, type DType } from '../tensor/dtype.js';
import { formatShape, numel } from '../tensor/shape.js';

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute offset of the first byte in the file. */
  byteOffset: number;
  byteLength: number;
}

export interface SafetensorsFile {
  source: ByteSource;
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
  /** Reads a tensor's raw bytes (into `into` when given; see `ByteSource.read`). */
  read(name: string, into?: Uint8Array): Promise<Uint8Array>;
}

/** Safetensors dtype names this toolkit can load, and the lithe dtype each becomes. */
export const SAFETENSORS_DTYPES: Readonly<Record<string, DType>> = {
  F32: 'f32',
  F16: 'f16',
  BF16: 'bf16',
  I8: 'i8',
  U8: 'u8',
  I32: 'i32',
};

/** Headers beyond this are not real safetensors files (large models have headers of a few MB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const METADATA_KEY = '__metadata__';

export async function parseSafetensors(source: ByteSource): Promise<SafetensorsFile> {
  const file = source.name;
  const fail = (problem: string): never => {
    throw new Error(`${file}: ${problem}`);
  };

  if (source.size < 8) {
    fail(`not a safetensors file: it has ${source.size} bytes, fewer than the 8-byte header length prefix`);
  }
  const headerLength = readU64(await source.read(0, 8), fail);
  if (headerLength > MAX_HEADER_BYTES) {
    fail(
      `header length prefix says ${headerLength} bytes, more than the ${MAX_HEADER_BYTES} byte limit; ` +
        `this is probably not a safetensors file`,
    );
  }
  if (headerLength > source.size - 8) {
    fail(
      `truncated: header says ${headerLength} bytes but the file has only ${source.size - 8} after the length prefix`,
    );
  }
  const dataStart = 8 + headerLength;
  const dataSize = source.size - dataStart;

  const header = parseHeaderJson(await source.read(8, headerLength), fail, file);

  let metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      metadata = parseMetadata(entry, fail);
      continue;
    }
    const t = parseEntry(name, entry, dataSize, fail);
    tensors.set(name, { ...t, byteOffset: dataStart + t.begin });
  }
  checkNoOverlap([...tensors.values()], fail);

  return {
    source,
    metadata,
    tensors,
    async read(name, into) {
      const info = tensors.get(name);
      if (!info) throw new Error(`${file}: ${missingTensorMessage(name, tensors)}`);
      return source.read(info.byteOffset, info.byteLength, into);
    },
  };
}

/** u64 little-endian, accepted only while it fits a JS number exactly (< 2^53). */
function readU64(bytes: Uint8Array, fail: (p: string) => never): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  if (hi >= 2 ** 21) {
    const big = (BigInt(hi) << 32n) | BigInt(lo);
    fail(`header length prefix is ${big}, which is absurd; this is probably not a safetensors file`);
  }
  return hi * 2 ** 32 + lo;
}

function parseHeaderJson(bytes: Uint8Array, fail: (p: string) => never, fileName: string): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return fail('header is not valid UTF-8; the file is corrupt or not a safetensors file');
  }
  if (jsonTooDeep(text)) {
    return fail(`invalid JSON header in ${fileName}: it nests deeper than ${MAX_JSON_DEPTH} levels (a safetensors header needs 3); the file is corrupt or hostile`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    return fail(`header is not valid JSON (${errorMessage(err)}); the file is corrupt or not a safetensors file`);
  }
  if (!isPlainObject(header)) {
    return fail(
      `header must be a JSON object mapping tensor names to {dtype, shape, data_offsets}, got ${describeJson(header)}`,
    );
  }
  // JSON.parse keeps only the last of duplicate keys, which would silently hide a tensor.
  const dup = findDuplicateTopLevelKey(text);
  if (dup !== null) fail(`tensor '${dup}' is listed more than once in the header`);
  return header;
}

function parseMetadata(value: unknown, fail: (p: string) => never): Record<string, string> {
  if (!isPlainObject(value)) return fail(`${METADATA_KEY} must be an object of strings, got ${describeJson(value)}`);
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') fail(`${METADATA_KEY}.${k} must be a string, got ${describeJson(v)}`);
  }
  return value as Record<string, string>;
}

interface ParsedEntry extends Omit<TensorInfo, 'byteOffset'> {
  begin: number;
}

function parseEntry(name: string, entry: unknown, dataSize: number, fail: (p: string) => never): ParsedEntry {
  const bad = (problem: string): never => fail(`tensor '${name}': ${problem}`);
  if (!isPlainObject(entry)) return bad(`expected an object {dtype, shape, data_offsets}, got ${describeJson(entry)}`);

  const { dtype: rawDtype, shape, data_offsets: offsets } = entry;
  if (typeof rawDtype !== 'string') return bad(`dtype must be a string, got ${describeJson(rawDtype)}`);
  const dtype = Object.hasOwn(SAFETENSORS_DTYPES, rawDtype) ? SAFETENSORS_DTYPES[rawDtype] : undefined;
  if (dtype === undefined) {
    return bad(
      `unsupported dtype ${rawDtype} (supported: ${Object.keys(SAFETENSORS_DTYPES).join(', ')}); ` +
        `convert the checkpoint to one of these first`,
    );
  }

  if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
    return bad(`shape must be an array of non-negative integers, got ${describeJson(shape)}`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !isNonNegativeInt(offsets[0]) ||
    !isNonNegativeInt(offsets[1])
  ) {
    return bad(`data_offsets must be [begin, end] with non-negative integers, got ${describeJson(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) bad(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataSize) {
    bad(
      `data_offsets [${begin}, ${end}] run past the end of the data section (${dataSize} bytes); ` +
        `is the file truncated?`,
    );
  }

  let expected: number;
  try {
    expected = byteSize(dtype, numel(shape));
  } catch (err) {
    return bad(errorMessage(err));
  }
  if (end - begin !== expected) {
    bad(
      `shape ${formatShape(shape)} of ${rawDtype} needs ${expected} bytes, ` +
        `but data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  return { name, dtype, shape: [...shape], begin, byteLength: expected };
}

/** Overlapping ranges mean a corrupt or hand-edited header; empty tensors occupy no bytes. */
function checkNoOverlap(tensors: TensorInfo[], fail: (p: string) => never): void {
  const sorted = tensors.filter((t) => t.byteLength > 0).sort((a, b) => a.byteOffset - b.byteOffset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (cur.byteOffset < prev.byteOffset + prev.byteLength) {
      fail(
        `tensors '${prev.name}' and '${cur.name}' overlap in the data section ` +
          `(bytes ${prev.byteOffset}..${prev.byteOffset + prev.byteLength} and ` +
          `${cur.byteOffset}..${cur.byteOffset + cur.byteLength} of the file)`,
      );
    }
  }
}

/**
 * Scans already-validated JSON text for a key repeated at the top level of its object. A single
 * linear pass over the header (at most a few MB), tracking nesting depth and skipping strings.
 */
function findDuplicateTopLevelKey(text: string): string | null {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      for (i++; text[i] !== '"'; i++) if (text[i] === '\\') i++;
      if (depth !== 1) continue;
      let j = i + 1;
      while (text[j] === ' ' || text[j] === '\t' || text[j] === '\n' || text[j] === '\r') j++;
      if (text[j] !== ':') continue; // a string value, not a key
      const key = JSON.parse(text.slice(start, i + 1)) as string;
      if (seen.has(key)) return key;
      seen.add(key);
    } else if (c === '{' || c === '[') {
      depth++;
    } else if (c === '}' || c === ']') {
      depth--;
    }
  }
  return null;
}

export function missingTensorMessage(name: string, tensors: ReadonlyMap<string, unknown>): string {
  const names = [...tensors.keys()];
  const sample = names.slice(0, 5).map((n) => `'${n}'`).join(', ');
  const more = names.length > 5 ? `, ... (${names.length} in all)` : '';
  return names.length === 0
    ? `no tensor named '${name}': the file contains no tensors`
    : `no tensor named '${name}' in this file; it has ${sample}${more}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function describeJson(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array ${truncate(JSON.stringify(v))}`;
  if (typeof v === 'object') return 'an object';
  if (v === undefined) return 'nothing (the field is missing)';
  return `${typeof v} ${truncate(JSON.stringify(v))}`;
}

function truncate(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
