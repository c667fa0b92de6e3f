// Model card: single image, single round (tiles chosen by the dynamic-resolution rule).
import { InternVL } from '../lib/index.js';
import { type Log, images, parseArgs, runIfMain } from './_shared.js';

export async function main(argv: string[], log: Log) {
  const { model: dir, backend } = parseArgs(argv);
  await using model = await InternVL.load(dir, { backend });
  const r = await model.chat({
    question: 'Please describe the image shortly.',
    images: [argv.includes('-i') ? argv[argv.indexOf('-i') + 1] : images.wide],
    generation: { maxNewTokens: 24 },
  });
  log(`User: <image>\\nPlease describe the image shortly.\nAssistant: ${r.response}`);
  log(`(${r.imageTiles[0]} tiles, ${r.usage.promptTokens} prompt tokens, ${r.timings.totalMs.toFixed(0)} ms)`);
  return r;
}

runIfMain(import.meta.url, main);
