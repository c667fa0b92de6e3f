// Model card: streaming output — text arrives as it is generated.
import { InternVL } from '../lib/index.js';
import { type Log, images, parseArgs, runIfMain } from './_shared.js';

export async function main(argv: string[], log: Log) {
  const { model: dir, backend } = parseArgs(argv);
  await using model = await InternVL.load(dir, { backend });
  const stream = model.stream({ question: 'Please describe the image shortly.', images: [images.wide], generation: { maxNewTokens: 24 } });
  const chunks: string[] = [];
  for await (const text of stream) chunks.push(text);
  log(`${chunks.length} chunks: ${chunks.join('')}`);
  return { chunks, result: await stream.result };
}

runIfMain(import.meta.url, main);
