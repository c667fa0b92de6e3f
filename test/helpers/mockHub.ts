/**
 * A Hugging Face Hub stand-in on 127.0.0.1 for the download tests (no test touches the
 * internet). It answers the two calls a pull makes, in the Hub's shapes:
 *
 * - `GET /api/models/{org}/{name}/revision/{rev}?blobs=true` → `{ id, sha, siblings: [{ rfilename,
 *   size, blobId, lfs?: { sha256, size, pointerSize } }] }`;
 * - `GET|HEAD /{org}/{name}/resolve/{rev}/{path}` → small files directly (ETag = git blob sha1),
 *   LFS files as a 302 to a second server (the "CDN", another origin) with `X-Linked-Etag`
 *   (sha256) and `X-Linked-Size`; both honour `Range: bytes=N-` with 206.
 *
 * Errors carry `X-Error-Code` as the Hub's do (RepoNotFound, RevisionNotFound, EntryNotFound,
 * GatedRepo). Faults, each for a number of requests of one file: cut the connection after N body
 * bytes, stall after N bytes, delay the headers, answer a status, corrupt a byte, ignore Range.
 * Every request is logged (server, method, path, Range, Authorization).
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';

export interface MockRepo {
  /** commit sha → (path → content). */
  commits: Map<string, Map<string, Buffer>>;
  /** branch/tag → commit sha. */
  refs: Map<string, string>;
  /** Requires the hub's token (401 without one, 403 with another). */
  gated?: boolean;
}

export type FaultKind = 'cut' | 'stall' | 'delay' | 'status' | 'corrupt' | 'ignore-range';

export interface Fault {
  /** The repo file path the fault applies to ('*' for the API listing). */
  path: string;
  kind: FaultKind;
  /** How many matching requests it affects (default 1; Infinity for all). */
  times?: number;
  /** cut/stall: body bytes sent first (default half the file). */
  bytes?: number;
  /** delay: ms before the response headers. */
  ms?: number;
  /** status: the status to answer. */
  status?: number;
}

export interface LoggedRequest {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  /** The repo file path served (resolve and CDN requests). */
  path?: string;
  range?: string;
  authorization?: string;
}

export const LFS_SUFFIXES = ['.safetensors', '.bin', '.model', '.jpg'];
export function isLfs(path: string): boolean {
  return LFS_SUFFIXES.some((s) => path.endsWith(s));
}
export function gitBlobSha1(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}
export function sha256(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}
export function fakeCommit(label: string): string {
  return createHash('sha1').update(`commit ${label}`).digest('hex');
}

/** The files of a local checkpoint directory plus `extra` (paths → contents), as one commit. */
export function repoFiles(dir: string, extra: Record<string, Buffer | string> = {}): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const name of readdirSync(dir).sort()) files.set(name, readFileSync(join(dir, name)));
  for (const [path, content] of Object.entries(extra)) files.set(path, Buffer.from(content));
  return files;
}

interface Listen {
  server: http.Server;
  sockets: Set<Socket>;
  url: string;
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Listen> {
  const server = http.createServer(handler);
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, sockets, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export class MockHub {
  readonly repos = new Map<string, MockRepo>();
  readonly requests: LoggedRequest[] = [];
  readonly token = 'hf_mock_token';
  /** Answer the listing without sizes and ids (as some mirrors do): the client must HEAD each file. */
  bareListing = false;
  private faults: Fault[] = [];
  private hub?: Listen;
  private cdn?: Listen;
  /** The most CDN (LFS file) requests in flight at once: arrival to the response's end. */
  maxInFlightCdn = 0;
  private inFlightCdn = 0;

  get url(): string {
    if (!this.hub) throw new Error('MockHub not started');
    return this.hub.url;
  }

  get cdnUrl(): string {
    if (!this.cdn) throw new Error('MockHub not started');
    return this.cdn.url;
  }

  addRepo(name: string, repo: MockRepo): void {
    this.repos.set(name, repo);
  }

  fault(f: Fault): void {
    this.faults.push({ times: 1, ...f });
  }

  clearFaults(): void {
    this.faults = [];
  }

  resetLog(): void {
    this.requests.length = 0;
    this.maxInFlightCdn = 0;
  }

  fileRequests(path: string, method = 'GET'): LoggedRequest[] {
    return this.requests.filter((r) => r.path === path && r.method === method);
  }

  async start(): Promise<void> {
    this.hub = await listen((req, res) => this.onHub(req, res));
    this.cdn = await listen((req, res) => this.onCdn(req, res));
  }

  async close(): Promise<void> {
    for (const l of [this.hub, this.cdn]) {
      if (!l) continue;
      for (const s of l.sockets) s.destroy();
      await new Promise<void>((resolve) => l.server.close(() => resolve()));
    }
  }

  private takeFault(path: string): Fault | undefined {
    const f = this.faults.find((x) => x.path === path && (x.times ?? 1) > 0);
    if (f) f.times = (f.times ?? 1) - 1;
    return f;
  }

  private log(server: 'hub' | 'cdn', req: IncomingMessage, path?: string): void {
    this.requests.push({
      server,
      method: req.method ?? 'GET',
      url: req.url ?? '',
      ...(path !== undefined ? { path } : {}),
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    });
  }

  private error(res: ServerResponse, status: number, code: string | undefined, message: string): void {
    res.writeHead(status, { 'content-type': 'application/json', ...(code ? { 'x-error-code': code } : {}), 'x-error-message': message });
    res.end(JSON.stringify({ error: message }));
  }

  /** The repo and commit a request names, or an error response already sent. */
  private locate(req: IncomingMessage, res: ServerResponse, repoName: string, revision: string): { repo: MockRepo; sha: string } | undefined {
    const repo = this.repos.get(repoName);
    if (!repo) {
      this.error(res, 404, 'RepoNotFound', 'Repository not found');
      return undefined;
    }
    if (repo.gated) {
      const auth = req.headers.authorization;
      if (auth !== `Bearer ${this.token}`) {
        this.error(res, auth ? 403 : 401, 'GatedRepo', 'Access to this model is restricted');
        return undefined;
      }
    }
    const sha = repo.commits.has(revision) ? revision : repo.refs.get(revision);
    if (!sha || !repo.commits.has(sha)) {
      this.error(res, 404, 'RevisionNotFound', 'Invalid rev id');
      return undefined;
    }
    return { repo, sha };
  }

  private onHub(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    if (api) {
      this.log('hub', req, '*');
      const fault = this.takeFault('*');
      const answer = () => {
        if (fault?.kind === 'status') return this.error(res, fault.status ?? 500, undefined, 'injected');
        const where = this.locate(req, res, api[1], decodeURIComponent(api[2]));
        if (!where) return;
        const files = where.repo.commits.get(where.sha) as Map<string, Buffer>;
        const siblings = [...files].map(([rfilename, content]) =>
          this.bareListing || url.searchParams.get('blobs') !== 'true'
            ? { rfilename }
            : {
                rfilename,
                size: content.length,
                blobId: gitBlobSha1(isLfs(rfilename) ? Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(content)}\nsize ${content.length}\n`) : content),
                ...(isLfs(rfilename) ? { lfs: { sha256: sha256(content), size: content.length, pointerSize: 134 } } : {}),
              },
        );
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: api[1], sha: where.sha, siblings }));
      };
      if (fault?.kind === 'delay') setTimeout(answer, fault.ms ?? 0);
      else answer();
      return;
    }
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (!resolve) return this.error(res, 404, undefined, 'no such route');
    const path = resolve[3].split('/').map(decodeURIComponent).join('/');
    this.log('hub', req, path);
    const where = this.locate(req, res, resolve[1], decodeURIComponent(resolve[2]));
    if (!where) return;
    const content = where.repo.commits.get(where.sha)?.get(path);
    if (!content) return this.error(res, 404, 'EntryNotFound', 'Entry not found');
    if (isLfs(path)) {
      res.writeHead(302, {
        location: `${this.cdnUrl}/cdn/${sha256(content)}?path=${encodeURIComponent(path)}&commit=${where.sha}&repo=${encodeURIComponent(resolve[1])}`,
        'x-repo-commit': where.sha,
        'x-linked-etag': `"${sha256(content)}"`,
        'x-linked-size': String(content.length),
        etag: `"${gitBlobSha1(content)}"`,
      });
      res.end();
      return;
    }
    this.serveBody(req, res, path, content, { 'x-repo-commit': where.sha, etag: `"${gitBlobSha1(content)}"` });
  }

  private onCdn(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.cdnUrl);
    const path = url.searchParams.get('path') ?? '';
    this.log('cdn', req, path);
    this.inFlightCdn++;
    this.maxInFlightCdn = Math.max(this.maxInFlightCdn, this.inFlightCdn);
    let counted = true;
    const done = () => {
      if (counted) this.inFlightCdn--;
      counted = false;
    };
    res.on('finish', done);
    res.on('close', done);
    const content = this.repos.get(url.searchParams.get('repo') ?? '')?.commits.get(url.searchParams.get('commit') ?? '')?.get(path);
    if (!content || sha256(content) !== url.pathname.split('/').at(-1)) return this.error(res, 404, undefined, 'no such blob');
    this.serveBody(req, res, path, content, { etag: `"${sha256(content)}"` });
  }

  /** A file body with Range support, through whatever fault applies to it. */
  private serveBody(req: IncomingMessage, res: ServerResponse, path: string, content: Buffer, headers: Record<string, string>): void {
    const fault = req.method === 'GET' ? this.takeFault(path) : undefined;
    const go = () => {
      if (req.socket.destroyed) return; // the client gave up while we were delaying
      if (fault?.kind === 'status') {
        res.writeHead(fault.status ?? 500, { 'retry-after': '0' });
        res.end('injected failure');
        return;
      }
      let body = content;
      if (fault?.kind === 'corrupt') {
        body = Buffer.from(content);
        body[body.length >> 1] ^= 0xff;
      }
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      let status = 200;
      const h: Record<string, string> = { ...headers, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
      if (m && fault?.kind !== 'ignore-range') {
        const start = Number(m[1]);
        if (start >= content.length) {
          res.writeHead(416, { 'content-range': `bytes */${content.length}` });
          res.end();
          return;
        }
        status = 206;
        h['content-range'] = `bytes ${start}-${content.length - 1}/${content.length}`;
        body = body.subarray(start);
      }
      h['content-length'] = String(body.length);
      if (req.method === 'HEAD') {
        res.writeHead(status, h);
        res.end();
        return;
      }
      res.writeHead(status, h);
      if (fault?.kind === 'cut' || fault?.kind === 'stall') {
        const n = Math.min(fault.bytes ?? body.length >> 1, body.length - 1);
        res.write(body.subarray(0, n), () => {
          // cut: the connection drops mid-body; stall: it stays open, silent, until the client gives up.
          if (fault.kind === 'cut') setTimeout(() => req.socket.destroy(), 5);
        });
        return;
      }
      // Send in pieces so concurrent downloads overlap (and progress has steps to report).
      const piece = 16 << 10;
      let off = 0;
      const pump = () => {
        while (off < body.length) {
          const chunk = body.subarray(off, off + piece);
          off += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', () => setImmediate(pump));
            return;
          }
          if (off < body.length) {
            setImmediate(pump);
            return;
          }
        }
        res.end();
      };
      pump();
    };
    if (fault?.kind === 'delay') setTimeout(go, fault.ms ?? 0);
    else go();
  }
}
