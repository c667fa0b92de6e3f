/** Server-sent events as OpenAI streams them: `data: <json>\n\n`, ending with `data: [DONE]`. */
import type { ServerResponse } from 'node:http';

export function startSse(res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
}

export function sendSse(res: ServerResponse, data: unknown): void {
  if (!res.writableEnded) res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
}
