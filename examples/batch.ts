// Model card: batch inference — independent questions, one image each, generated together.
import { InternVL } from '../lib/index.js';
import { type Log, images, parseArgs, runIfMain } from './_shared.js';

export async function main(argv: string[], log: Log) {
  const { model: dir, backend } = parseArgs(argv);
  await using model = await InternVL.load(dir, { backend });
  const r = await model.batchChat({
    questions: ['Describe the first image.', 'Describe the second image.'],
    images: [images.wide, images.tall],
    generation: { maxNewTokens: 24 },
  });
  r.responses.forEach((text, i) => log(`[${i}] ${text}`));
  return r;
}

runIfMain(import.meta.url, main);
