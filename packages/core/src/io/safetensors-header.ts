/** Writing side of safetensors: the length prefix and JSON header for tensors laid out back to back. */

export interface HeaderEntry {
  name: string;
  /** Safetensors dtype name: 'F32', 'U8', ... */
  dtype: string;
  shape: number[];
  byteLength: number;
}

/**
 * The bytes before the data section (8-byte little-endian header length, then the JSON padded with
 * spaces to a multiple of 8), and each tensor's [begin, end) offsets in the data section.
 */
export function safetensorsHeader(entries: HeaderEntry[], metadata?: Record<string, string>): { prefix: Uint8Array; dataBytes: number } {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const e of entries) {
    if (e.name in header) throw new Error(`safetensors: tensor '${e.name}' listed twice`);
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.byteLength] };
    offset += e.byteLength;
  }
  let json = JSON.stringify(header);
  const utf8 = new TextEncoder().encode(json);
  json += ' '.repeat((8 - (utf8.length % 8)) % 8);
  const body = new TextEncoder().encode(json);
  const prefix = new Uint8Array(8 + body.length);
  const view = new DataView(prefix.buffer);
  view.setUint32(0, body.length, true);
  view.setUint32(4, Math.floor(body.length / 2 ** 32), true);
  prefix.set(body, 8);
  return { prefix, dataBytes: offset };
}

const DTYPE_NAMES: Record<string, string> = { f32: 'F32', f16: 'F16', bf16: 'BF16', i8: 'I8', u8: 'U8', i32: 'I32' };

/** The safetensors name of a lithe dtype. */
export function safetensorsDType(dtype: string): string {
  const n = DTYPE_NAMES[dtype];
  if (!n) throw new Error(`safetensors: no safetensors name for dtype '${dtype}'`);
  return n;
}
