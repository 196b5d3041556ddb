/**
 * CORS: which web origins may call the server from a browser. None by default: browsers then
 * refuse to show a cross-origin page any response, and the preflight of any non-simple request
 * (JSON bodies, an Authorization header) fails.
 */
export type CorsOrigins = '*' | readonly string[];

/** `--cors` as given: `*` or a comma-separated list of origins (`https://app.example.com`). */
export function parseCors(raw: string): CorsOrigins {
  const s = raw.trim();
  if (s === '*') return '*';
  const origins = s.split(',').map((o) => o.trim()).filter((o) => o.length > 0);
  if (origins.length === 0) throw new Error(`--cors needs '*' or a comma-separated list of origins, got '${raw}'`);
  for (const o of origins) {
    let url: URL;
    try {
      url = new URL(o);
    } catch {
      throw new Error(`--cors: '${o}' is not an origin such as https://app.example.com`);
    }
    if (url.origin !== o.replace(/\/$/, '')) throw new Error(`--cors: '${o}' is not an origin (scheme://host[:port], no path), e.g. ${url.origin}`);
  }
  return origins.map((o) => o.replace(/\/$/, ''));
}

/** The Access-Control-Allow-Origin value for a request from `origin`, or null when it is not allowed. */
export function allowedOrigin(origins: CorsOrigins | undefined, origin: string): string | null {
  if (!origins) return null;
  if (origins === '*') return '*';
  return origins.includes(origin) ? origin : null;
}
