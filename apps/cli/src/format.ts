/** Formatting of sizes, counts and tables for human-readable output. */

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** Bytes in binary units: 1536 -> "1.50 KiB". */
export function formatBytes(bytes: number): string {
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < BYTE_UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(2)} ${BYTE_UNITS[u]}`;
}

/** Large counts with a decimal suffix: 1_100_048_384 -> "1.10B". */
export function formatCount(n: number): string {
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [size, suffix] of units) if (Math.abs(n) >= size) return `${(n / size).toFixed(2)}${suffix}`;
  return String(n);
}

/** A number with a fixed count of decimals and thousands separators. */
export function formatNumber(n: number, digits = 2): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Two aligned columns: labels padded to the longest one. */
export function formatTable(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`.trimEnd()).join('\n');
}

/** Prints one JSON object on one line of stdout (the machine-readable result of a command). */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}
