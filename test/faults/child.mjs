// A process that loads the tiny fixture and generates, for test/faults/lifecycle.test.ts:
//   node child.mjs <scenario>
// It prints "generating" once tokens stream, then:
//   exit          process.exit(0) from inside onToken (a generation in flight)
//   throw         an uncaught exception from a timer while generating
//   wait          keeps generating (the parent sends a signal)
//   sigint-dispose  on SIGINT: model.dispose() and nothing else (the loop must end by itself)
//   natural       one short chat, no dispose, nothing left to do (must exit by itself)
// The compiled dist/ is used (npm test builds it first).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const { InternVL } = await import(join(here, '..', '..', 'dist', 'index.js'));
const model = await InternVL.load(join(here, '..', 'fixtures', 'models', 'tiny-internlm2'), { backend: 'cpu', threads: 1 });
const scenario = process.argv[2];

if (scenario === 'natural') {
  const r = await model.chat({ question: 'Hello', generation: { maxNewTokens: 4 } });
  console.log(`done ${r.tokenIds.length}`);
} else {
  let announced = false;
  if (scenario === 'sigint-dispose') {
    process.on('SIGINT', () => {
      console.log('disposing');
      model.dispose();
    });
  }
  const p = model.chat({
    question: 'Count forever.',
    generation: { maxNewTokens: 1_000_000, doSample: true, seed: 1 },
    onToken: () => {
      if (announced) return;
      announced = true;
      console.log('generating');
      if (scenario === 'exit') process.exit(0);
      if (scenario === 'throw') setTimeout(() => {
        throw new Error('uncaught while generating');
      }, 0);
    },
  });
  p.then((r) => console.log(`settled ${r.finishReason}`), (e) => console.log(`rejected ${e.code}`));
}
