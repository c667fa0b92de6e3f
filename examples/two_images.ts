// Model card: two images, either combined behind one <image> or separate
// (`Image-1: <image>\nImage-2: <image>\n…` with numPatchesList).
import { InternVL } from '../lib/index.js';
import { type Log, images, parseArgs, runIfMain } from './_shared.js';

export async function main(argv: string[], log: Log) {
  const { model: dir, backend } = parseArgs(argv);
  await using model = await InternVL.load(dir, { backend });
  const generation = { maxNewTokens: 24 };
  const combined = await model.chat({
    question: 'Describe the two images in detail.',
    images: [images.wide, images.tall],
    combineImages: true,
    generation,
  });
  log(`combined (${combined.imageTiles} tiles): ${combined.response}`);
  const separate = await model.chat({
    question: 'What are the similarities and differences between these two images.',
    images: [images.wide, images.tall],
    generation,
  });
  log(`separate (${separate.imageTiles.join(' + ')} tiles): ${separate.response}`);
  return { combined, separate };
}

runIfMain(import.meta.url, main);
