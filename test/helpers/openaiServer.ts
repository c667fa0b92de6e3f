/** What the server tests share: the tiny-qwen2 fixture served on loopback, and request pieces. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { InternVL } from '../../lib/model.js';
import { type RunningServer, type ServeOptions, serve } from '../../lib/server/server.js';
import { fixturesDir, readModelGolden } from './goldens.js';

export const golden = readModelGolden('tiny-qwen2');

export interface Served {
  model: InternVL;
  running: RunningServer;
  /** The official client, with the server's API key (if any). */
  client: OpenAI;
}

/**
 * Loads the fixture on the CPU and serves it (port 0) for the calling file's tests: filled in
 * beforeAll, closed and disposed in afterAll.
 */
export function useServedModel(options: ServeOptions = {}): Served {
  const served = {} as Served;
  beforeAll(async () => {
    served.model = await InternVL.load(join(fixturesDir, golden.model_dir), { backend: 'cpu' });
    served.running = await serve(served.model, { ...options, port: 0 });
    served.client = new OpenAI({ baseURL: `${served.running.url}/v1`, apiKey: options.apiKey ?? 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await served.running?.close(1000);
    served.model?.dispose();
  });
  return served;
}

/** One user turn: the fixture picture wide.jpg as a data: URL, then the question (the goldens' image case). */
export function imageUserMessages(question: string): OpenAI.ChatCompletionMessageParam[] {
  const jpeg = readFileSync(join(fixturesDir, 'images', 'wide.jpg')).toString('base64');
  return [
    {
      role: 'user',
      content: [
        { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${jpeg}` } },
        { type: 'text', text: question },
      ],
    },
  ];
}
