/**
 * Element types. Plain types hold one value per element; packed types (4-bit weights, block
 * formats) hold `blockSize` values in `blockBytes` bytes, so technique packages can add their own
 * with `registerDType` and every size computation below still holds.
 */
export type BuiltinDType = 'f32' | 'f16' | 'bf16' | 'i8' | 'u8' | 'i32';
// `string & {}` keeps editor completion for the builtins while allowing registered packed types.
export type DType = BuiltinDType | (string & {});

export interface DTypeInfo {
  readonly name: DType;
  /** Elements per block: 1 for plain types. */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly blockBytes: number;
  /** True for floating-point element types that kernels can read as numbers directly. */
  readonly float: boolean;
}

const registry = new Map<string, DTypeInfo>();

export function registerDType(info: DTypeInfo): void {
  const existing = registry.get(info.name);
  if (existing && (existing.blockSize !== info.blockSize || existing.blockBytes !== info.blockBytes)) {
    throw new Error(`dtype '${info.name}' is already registered with a different layout`);
  }
  registry.set(info.name, info);
}

for (const [name, bytes, float] of [
  ['f32', 4, true],
  ['f16', 2, true],
  ['bf16', 2, true],
  ['i8', 1, false],
  ['u8', 1, false],
  ['i32', 4, false],
] as const) {
  registerDType({ name, blockSize: 1, blockBytes: bytes, float });
}

export function dtypeInfo(dtype: DType): DTypeInfo {
  const info = registry.get(dtype);
  if (!info) throw new Error(`unknown dtype '${dtype}'; known: ${[...registry.keys()].join(', ')}`);
  return info;
}

/** Bytes needed to store `numel` elements of `dtype`; packed types must fill whole blocks. */
export function byteSize(dtype: DType, numel: number): number {
  const { blockSize, blockBytes } = dtypeInfo(dtype);
  if (numel % blockSize !== 0) {
    throw new Error(`${numel} elements do not fill whole blocks of ${blockSize} for dtype '${dtype}'`);
  }
  return (numel / blockSize) * blockBytes;
}
