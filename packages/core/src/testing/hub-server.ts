import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

/**
 * A local server with the Hugging Face Hub's URL layout, for tests without internet:
 * `/{owner}/{repo}/resolve/{revision}/{file}` answers HEAD and GET (single Range requests: 206) with
 * an ETag, and like the Hub redirects weight files to a CDN path first. It can require a token and
 * drop connections after some requests or mid-body, counts the bytes it sends, and records every request.
 */

export interface HubServerOptions {
  /** 'owner/repo' -> revision -> directory holding that revision's files. */
  repos: Record<string, Record<string, string>>;
  /** Requests without `Authorization: Bearer <token>` get 401. */
  token?: string;
  /** Changes every ETag (a new upload of the same files). */
  etagSalt?: string;
}

export interface HubRequest {
  method: string;
  path: string;
  range: string | null;
  status: number;
}

export interface HubServer {
  /** The endpoint to pass as `endpoint` (or HF_ENDPOINT). */
  endpoint: string;
  requests: HubRequest[];
  options: HubServerOptions;
  /** Range GETs still answered before the server starts dropping them (Infinity: never drop). */
  rangeBudget: number;
  /**
   * Bodies still to cut: each of the next `times` GET bodies longer than `afterBytes` of a file
   * whose name ends with `suffix` stops after `afterBytes` bytes, its connection destroyed (a drop mid-file).
   */
  cut: { suffix: string; afterBytes: number; times: number } | null;
  /** Body bytes sent so far, per file name. */
  bytesServed: Map<string, number>;
  close(): Promise<void>;
}

export async function startHubServer(options: HubServerOptions): Promise<HubServer> {
  const hub: HubServer = { endpoint: '', requests: [], options, rangeBudget: Infinity, cut: null, bytesServed: new Map(), close: async () => {} };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<number> {
    // Pages on other origins read the Hub (CORS, as huggingface.co answers), cross-origin isolated ones included.
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Expose-Headers', 'Content-Range, Content-Length, ETag, Accept-Ranges, X-Repo-Commit, X-Linked-Etag, X-Linked-Size');
    res.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'Access-Control-Allow-Headers': 'Authorization, Range', 'Access-Control-Allow-Methods': 'GET, HEAD' });
      res.end();
      return 204;
    }
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const auth = req.headers.authorization;
    if (hub.options.token && auth !== `Bearer ${hub.options.token}`) return end(res, 401, 'Invalid credentials in Authorization header');
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/([^/]+)$/.exec(path);
    const cdn = /^\/cdn\/([^/]+\/[^/]+)\/([^/]+)\/([^/]+)$/.exec(path);
    const m = resolve ?? cdn;
    if (!m) return end(res, 404, 'Entry not found');
    const [, repo, revision, name] = m;
    const dir = hub.options.repos[repo]?.[revision];
    if (!dir) return end(res, 404, 'Repository or revision not found');
    const file = join(dir, name);
    const info = await stat(file).catch(() => null);
    if (!info?.isFile()) return end(res, 404, 'Entry not found');
    const etag = `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}${hub.options.etagSalt ?? ''}"`;
    // Like the Hub: the commit a revision resolves to, on every resolve/ answer.
    if (resolve) res.setHeader('X-Repo-Commit', createHash('sha1').update(`${repo}@${revision}`).digest('hex'));
    // The Hub sends weight files through its CDN; the redirect names the file's own (LFS) ETag and size.
    if (resolve && name.endsWith('.safetensors')) {
      const linked = `"${createHash('sha256').update(etag).digest('hex')}"`;
      res.writeHead(302, { Location: `/cdn/${repo}/${revision}/${encodeURIComponent(name)}`, 'X-Linked-Etag': linked, 'X-Linked-Size': String(info.size), ETag: linked });
      res.end();
      return 302;
    }
    res.setHeader('ETag', etag);
    res.setHeader('Accept-Ranges', 'bytes');
    let start = 0;
    let last = info.size - 1;
    let status = 200;
    const range = req.headers.range;
    if (range && req.method === 'GET') {
      const r = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (!r || Number(r[1]) >= info.size) return end(res, 416, 'Range Not Satisfiable');
      if (hub.rangeBudget <= 0) {
        req.socket.destroy();
        return -1;
      }
      hub.rangeBudget--;
      start = Number(r[1]);
      last = r[2] ? Math.min(Number(r[2]), info.size - 1) : info.size - 1;
      status = 206;
      res.setHeader('Content-Range', `bytes ${start}-${last}/${info.size}`);
    }
    res.writeHead(status, { 'Content-Length': String(last - start + 1), 'Content-Type': 'application/octet-stream' });
    if (req.method === 'HEAD') {
      res.end();
      return status;
    }
    const count = (n: number) => hub.bytesServed.set(name, (hub.bytesServed.get(name) ?? 0) + n);
    const cut = hub.cut && hub.cut.times > 0 && name.endsWith(hub.cut.suffix) && last - start + 1 > hub.cut.afterBytes ? hub.cut : null;
    if (cut) {
      // Part of the body, then a dropped connection.
      cut.times--;
      const sent = cut.afterBytes;
      const head = await new Promise<Buffer>((ok, fail) => {
        const parts: Buffer[] = [];
        createReadStream(file, { start, end: start + sent - 1 }).on('data', (b) => parts.push(b as Buffer)).on('error', fail).on('end', () => ok(Buffer.concat(parts)));
      });
      count(head.length);
      await new Promise<void>((ok) => res.write(head, () => ok()));
      req.socket.destroy();
      return -1;
    }
    await new Promise<void>((ok, fail) => createReadStream(file, { start, end: last }).on('data', (b) => count(b.length)).on('error', fail).on('end', ok).pipe(res));
    return status;
  }

  const server = createServer((req, res) => {
    handle(req, res).then(
      (status) => hub.requests.push({ method: req.method ?? '', path: req.url ?? '', range: req.headers.range ?? null, status }),
      (err: Error) => (res.headersSent ? res.destroy(err) : end(res, 500, err.message)),
    );
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  hub.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  hub.close = () =>
    new Promise<void>((ok) => {
      server.close(() => ok());
      server.closeAllConnections();
    });
  return hub;
}

function end(res: ServerResponse, status: number, body: string): number {
  res.writeHead(status, { 'Content-Type': 'text/plain' });
  res.end(body);
  return status;
}
