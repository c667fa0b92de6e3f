/**
 * An OpenAI-compatible HTTP server over one loaded model: POST /v1/chat/completions
 * (JSON or SSE streaming), GET /v1/models, GET /health, GET /metrics (Prometheus). Binds to 127.0.0.1 unless
 * told otherwise; a client that disconnects cancels its request; a bounded queue
 * answers 429 when full; close() finishes or cancels what is in flight.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename } from 'node:path';
import type { ChatResult } from '../chatTypes.js';
import type { InternVL } from '../model.js';
import { HttpError, errorBody, toHttpError } from './httpErrors.js';
import { ServerCounters, renderMetrics } from './metrics.js';
import { mapChatCompletion } from './openaiMessages.js';
import { sendSse, startSse } from './sse.js';

/** Options of {@link serve}: address, API key, local files, limits. */
export interface ServeOptions {
  host?: string;
  port?: number;
  /** Require `Authorization: Bearer <apiKey>` on /v1 routes. */
  apiKey?: string;
  /** Model id reported by /v1/models (default: the checkpoint directory's name). */
  modelId?: string;
  /** Allow image_url to name local files inside this directory. */
  allowLocalFiles?: string;
  /** Requests running or waiting at most; more get 429. */
  maxQueue?: number;
  /** Largest request body in bytes; more get 413. */
  maxBodyBytes?: number;
}

/** A started OpenAI-compatible server ({@link serve}): its address and how to stop it. */
export interface RunningServer {
  server: Server;
  url: string;
  /** Stops accepting, lets in-flight requests finish for graceMs, then cancels them. */
  close(graceMs?: number): Promise<void>;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

async function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `request body is larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
}

function sendJson(res: ServerResponse, status: number, body: string): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body);
}

/**
 * Serves a loaded model over an OpenAI-compatible HTTP API (/v1/chat/completions with SSE,
 * /v1/models, /health) and GET /metrics in the Prometheus text format (behind the API key
 * when one is set).
 */
export async function serve(model: InternVL, options: ServeOptions = {}): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const modelId = options.modelId ?? model.repo ?? basename(model.dir);
  const maxQueue = options.maxQueue ?? 64;
  const maxBody = options.maxBodyBytes ?? 32 * 1024 * 1024;
  const keyDigest = options.apiKey ? digest(options.apiKey) : undefined;
  const inflight = new Set<AbortController>();
  const counters = new ServerCounters();
  let closing = false;

  function authorized(req: IncomingMessage): boolean {
    if (!keyDigest) return true;
    const h = req.headers.authorization ?? '';
    const token = h.startsWith('Bearer ') ? h.slice(7) : '';
    return timingSafeEqual(digest(token), keyDigest);
  }

  async function completions(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (closing) throw new HttpError(503, 'server is shutting down', 'server_error');
    if (inflight.size >= maxQueue) throw new HttpError(429, `too many requests in flight (${maxQueue})`, 'rate_limit_error');
    const ac = new AbortController();
    inflight.add(ac);
    const onClose = () => {
      if (!res.writableFinished) ac.abort();
    };
    res.on('close', onClose);
    try {
      const body = await readBody(req, maxBody);
      const mapped = await mapChatCompletion(body, {
        ...(options.allowLocalFiles !== undefined ? { localFilesRoot: options.allowLocalFiles } : {}),
        maxImageBytes: maxBody,
      });
      const id = `chatcmpl-${randomUUID()}`;
      const created = Math.floor(Date.now() / 1000);
      const chunk = (index: number, delta: object, finish: string | null) => ({
        id,
        object: 'chat.completion.chunk',
        created,
        model: modelId,
        choices: [{ index, delta, finish_reason: finish }],
      });
      // n choices: n requests to the engine, which batches them (the picture's tiles encoded
      // once when they share a prefill step); choice i samples with seed + i, so choice 0 is
      // what n = 1 returns. The prompt is counted once in usage, as OpenAI does.
      const base = mapped.chat.generation?.seed ?? 0;
      const seedOf = (i: number) => (base + i) % (Number.MAX_SAFE_INTEGER + 1);
      const usage = (rs: ChatResult[]) => {
        const completion = rs.reduce((a, r) => a + r.usage.completionTokens, 0);
        return { prompt_tokens: rs[0].usage.promptTokens, completion_tokens: completion, total_tokens: rs[0].usage.promptTokens + completion };
      };
      const finish = (r: ChatResult) => (r.finishReason === 'length' ? 'length' : 'stop');
      const count = (rs: ChatResult[]) => {
        const u = usage(rs);
        counters.promptTokens += u.prompt_tokens;
        counters.completionTokens += u.completion_tokens;
      };
      // One failed choice fails the request: the others are cancelled, not left running.
      const all = (run: (i: number) => Promise<ChatResult>) =>
        Promise.all(Array.from({ length: mapped.n }, (_, i) => run(i))).catch((e: unknown) => {
          ac.abort();
          throw e;
        });
      const chatFor = (i: number) => ({
        ...mapped.chat,
        generation: mapped.n > 1 ? { ...mapped.chat.generation, seed: seedOf(i) } : mapped.chat.generation,
        signal: ac.signal,
      });
      if (mapped.stream) {
        const started = new Array<boolean>(mapped.n).fill(false);
        const start = (i: number) => {
          if (started[i]) return;
          if (!res.headersSent) startSse(res);
          started[i] = true;
          sendSse(res, chunk(i, { role: 'assistant', content: '' }, null));
        };
        const rs = await all((i) =>
          model.chat({
            ...chatFor(i),
            onToken: (text) => {
              start(i);
              sendSse(res, chunk(i, { content: text }, null));
            },
          }),
        );
        count(rs);
        rs.forEach((r, i) => {
          start(i);
          sendSse(res, chunk(i, {}, finish(r)));
        });
        if (mapped.includeUsage) sendSse(res, { id, object: 'chat.completion.chunk', created, model: modelId, choices: [], usage: usage(rs) });
        sendSse(res, '[DONE]');
        res.end();
      } else {
        const rs = await all((i) => model.chat(chatFor(i)));
        count(rs);
        sendJson(
          res,
          200,
          JSON.stringify({
            id,
            object: 'chat.completion',
            created,
            model: modelId,
            choices: rs.map((r, i) => ({ index: i, message: { role: 'assistant', content: r.response }, finish_reason: finish(r) })),
            usage: usage(rs),
          }),
        );
      }
    } finally {
      res.off('close', onClose);
      inflight.delete(ac);
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/health') {
      sendJson(res, 200, JSON.stringify({ status: closing ? 'closing' : 'ok', inflight: inflight.size }));
      return;
    }
    if ((url.pathname.startsWith('/v1/') || url.pathname === '/metrics') && !authorized(req)) {
      throw new HttpError(401, 'invalid or missing API key', 'invalid_request_error', null, 'invalid_api_key');
    }
    if (req.method === 'GET' && url.pathname === '/metrics') {
      if (!res.headersSent) {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(renderMetrics(model.stats(), counters, inflight.size));
      }
      return;
    }
    if (req.method === 'GET' && url.pathname === '/v1/models') {
      sendJson(res, 200, JSON.stringify({ object: 'list', data: [{ id: modelId, object: 'model', created: 0, owned_by: 'internvl-node' }] }));
      return;
    }
    if (url.pathname === '/v1/chat/completions') {
      if (req.method !== 'POST') throw new HttpError(405, 'use POST');
      await completions(req, res);
      return;
    }
    throw new HttpError(404, `no route for ${req.method} ${url.pathname}`);
  }

  // Responses by route (known routes only: a scanner's paths must not grow the label set) and status.
  const routes = new Set(['/health', '/metrics', '/v1/models', '/v1/chat/completions']);
  const server = createServer((req, res) => {
    // on close, so a client that hung up counts too (as 499, nginx's "client closed request")
    res.once('close', () => {
      let path = 'other';
      try {
        path = new URL(req.url ?? '/', 'http://localhost').pathname; // a malformed target must not throw here
      } catch {}
      counters.response(routes.has(path) ? path : 'other', res.writableFinished ? res.statusCode : 499);
    });
    route(req, res).catch((e: unknown) => {
      const err = toHttpError(e);
      if (!res.headersSent) sendJson(res, err.status, errorBody(err));
      else if (!res.writableEnded) {
        // mid-stream failure: report it as a final SSE event, then end
        sendSse(res, JSON.parse(errorBody(err)));
        res.end();
      }
    });
  });
  server.requestTimeout = 0; // generations can be long; clients disconnecting cancel them
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8000, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    server,
    url: `http://${shownHost}:${addr.port}`,
    async close(graceMs = 10_000) {
      closing = true;
      const closed = new Promise<void>((r) => server.close(() => r()));
      const deadline = Date.now() + graceMs;
      while (inflight.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      for (const ac of inflight) ac.abort();
      server.closeAllConnections();
      await closed;
    },
  };
}
