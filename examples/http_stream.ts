// Node: a plain node:http route that streams a reply as text; a client that goes
// away cancels its generation. (`internvl serve` is the full OpenAI-compatible server.)
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InternVL } from '../lib/index.js';
import { type Log, parseArgs, runIfMain } from './_shared.js';

export async function main(argv: string[], log: Log) {
  const { model: dir, backend } = parseArgs(argv);
  await using model = await InternVL.load(dir, { backend });
  const server = createServer(async (req, res) => {
    const question = new URL(req.url ?? '/', 'http://x').searchParams.get('q') ?? 'Hello';
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    try {
      for await (const text of model.stream({ question, generation: { maxNewTokens: 32 }, signal: ac.signal })) res.write(text);
    } catch {
      /* client gone */
    }
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const body = await (await fetch(`http://127.0.0.1:${port}/?q=${encodeURIComponent('Who are you?')}`)).text();
  log(`GET /?q=Who are you? -> ${JSON.stringify(body)}`);
  await new Promise((r) => server.close(r));
  return body;
}

runIfMain(import.meta.url, main);
