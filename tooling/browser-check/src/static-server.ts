import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';

/**
 * A local HTTP server for the browser tests: static files under URL prefixes, HEAD and single-range
 * GET (206) like a CDN, and the headers that make a page cross-origin isolated (COOP/COEP), which
 * wasm threads need. It records each request so tests can see how a model was fetched.
 */

export interface ServedRequest {
  method: string;
  path: string;
  range: string | null;
  status: number;
}

export interface StaticServer {
  url: string;
  requests: ServedRequest[];
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
};

/** `routes` maps a URL prefix ('/models/') to a directory. `isolate: false` leaves out COOP/COEP. */
export async function startStaticServer(routes: Record<string, string>, opts: { isolate?: boolean } = {}): Promise<StaticServer> {
  const requests: ServedRequest[] = [];
  const isolate = opts.isolate !== false;
  const prefixes = Object.keys(routes).sort((a, b) => b.length - a.length);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<number> {
    if (isolate) {
      res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
      res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    }
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    res.setHeader('Cache-Control', 'no-store');
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const prefix = prefixes.find((p) => path.startsWith(p));
    if (!prefix || (req.method !== 'GET' && req.method !== 'HEAD')) return end(res, prefix ? 405 : 404);
    const root = routes[prefix];
    const file = normalize(join(root, path.slice(prefix.length) || 'index.html'));
    if (!file.startsWith(root.endsWith(sep) ? root : root + sep)) return end(res, 403);
    const info = await stat(file).catch(() => null);
    if (!info?.isFile()) return end(res, 404);
    res.setHeader('Content-Type', TYPES[extname(file)] ?? 'application/octet-stream');
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('ETag', `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`);
    let start = 0;
    let endByte = info.size - 1;
    let status = 200;
    const range = req.headers.range;
    if (range) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (!m || Number(m[1]) >= info.size) {
        res.setHeader('Content-Range', `bytes */${info.size}`);
        return end(res, 416);
      }
      start = Number(m[1]);
      endByte = m[2] ? Math.min(Number(m[2]), info.size - 1) : info.size - 1;
      status = 206;
      res.setHeader('Content-Range', `bytes ${start}-${endByte}/${info.size}`);
    }
    res.setHeader('Content-Length', String(endByte - start + 1));
    res.writeHead(status);
    if (req.method === 'HEAD') {
      res.end();
      return status;
    }
    await new Promise<void>((resolve, reject) => createReadStream(file, { start, end: endByte }).on('error', reject).on('end', resolve).pipe(res));
    return status;
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).then(
      (status) => requests.push({ method: req.method ?? '', path: req.url ?? '', range: req.headers.range ?? null, status }),
      (err: Error) => {
        if (!res.headersSent) end(res, 500, err.message);
        else res.destroy(err);
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function end(res: ServerResponse, status: number, body = ''): number {
  res.writeHead(status, { 'Content-Type': 'text/plain' });
  res.end(body);
  return status;
}
