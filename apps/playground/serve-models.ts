import { createReadStream, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join, normalize, sep } from 'node:path';

/**
 * Serves a models directory at /models/ the way a CDN or the Hub does: HEAD, single Range requests
 * (206) and an ETag, so the playground loads the repository's fixture over HTTP like any model.
 */
export function serveModels(root: string) {
  return (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = normalize(join(root, path));
    if (!file.startsWith(root + sep)) return next();
    let size: number;
    let mtime: number;
    try {
      const s = statSync(file);
      if (!s.isFile()) return next();
      ({ size, mtimeMs: mtime } = s);
    } catch {
      res.writeHead(404).end();
      return;
    }
    let start = 0;
    let end = size - 1;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('ETag', `"${size.toString(16)}-${Math.floor(mtime).toString(16)}"`);
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    }
    res.writeHead(range ? 206 : 200, { 'Content-Length': String(end - start + 1), 'Content-Type': path.endsWith('.json') ? 'application/json' : 'application/octet-stream' });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file, { start, end }).pipe(res);
  };
}
