// Model card: one image, several rounds. As in the reference, the image is passed on
// every turn (its placeholder lives in the history's first question).
import { InternVL } from '../lib/index.js';
import { type Log, images, parseArgs, runIfMain } from './_shared.js';

export async function main(argv: string[], log: Log) {
  const { model: dir, backend } = parseArgs(argv);
  await using model = await InternVL.load(dir, { backend });
  const generation = { maxNewTokens: 24 };
  const first = await model.chat({ question: 'Please describe the image in detail.', images: [images.wide], generation });
  log(`Assistant: ${first.response}`);
  const second = await model.chat({ question: 'Please write a poem according to the image.', images: [images.wide], history: first.history, generation });
  log(`Assistant: ${second.response}`);
  return second;
}

runIfMain(import.meta.url, main);
