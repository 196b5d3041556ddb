/** Test-only builders for safetensors files (not exported from the package). */
import { randomBytes } from 'node:crypto';

export interface BuildEntry {
  name: string;
  /** Safetensors dtype name, e.g. 'F32'. */
  dtype: string;
  shape: number[];
  /** Defaults to fresh random bytes of the right length. */
  data?: Uint8Array;
}

const ELEMENT_BYTES: Record<string, number> = {
  F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export interface Built {
  bytes: Uint8Array;
  /** The header object, for tests that tamper with it and re-encode. */
  header: Record<string, unknown>;
  /** The data section. */
  data: Uint8Array;
  /** Each tensor's bytes. */
  tensors: Map<string, Uint8Array>;
}

/** Lays tensors out back to back, in order, the way the safetensors writer does. */
export function buildSafetensors(entries: BuildEntry[], metadata?: Record<string, string>): Built {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const tensors = new Map<string, Uint8Array>();
  let offset = 0;
  for (const e of entries) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    const bytes = e.data ?? new Uint8Array(randomBytes(n * ELEMENT_BYTES[e.dtype]));
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + bytes.length] };
    tensors.set(e.name, bytes);
    offset += bytes.length;
  }
  const data = new Uint8Array(offset);
  offset = 0;
  for (const bytes of tensors.values()) {
    data.set(bytes, offset);
    offset += bytes.length;
  }
  return { bytes: encodeSafetensors(header, data), header, data, tensors };
}

/**
 * Prefix + header + data. `header` may be raw text or bytes for malformed-header tests;
 * `lengthPrefix` overrides the declared header length.
 */
export function encodeSafetensors(
  header: unknown,
  data: Uint8Array = new Uint8Array(0),
  lengthPrefix?: bigint,
): Uint8Array {
  let headerBytes: Uint8Array;
  if (header instanceof Uint8Array) headerBytes = header;
  else {
    let text = typeof header === 'string' ? header : JSON.stringify(header);
    // The reference writer pads the header with spaces so the data starts 8-byte aligned.
    const byteLen = new TextEncoder().encode(text).length;
    if (typeof header !== 'string') text += ' '.repeat((8 - (byteLen % 8)) % 8);
    headerBytes = new TextEncoder().encode(text);
  }
  const out = new Uint8Array(8 + headerBytes.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthPrefix ?? BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.length);
  return out;
}
