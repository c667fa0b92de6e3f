// Node: bound a generation with AbortSignal.timeout(); keep what was generated so far.
import { InternVL } from '../lib/index.js';
import { type Log, parseArgs, runIfMain } from './_shared.js';

export async function main(argv: string[], log: Log) {
  const { model: dir, backend } = parseArgs(argv);
  await using model = await InternVL.load(dir, { backend });
  const r = await model.chat({
    question: 'Write a very long essay.',
    generation: { maxNewTokens: 100_000, doSample: true, seed: 1 },
    signal: AbortSignal.timeout(200),
    partialOnAbort: true,
  });
  log(`finish: ${r.finishReason}, ${r.usage.completionTokens} tokens in ${r.timings.generateMs.toFixed(0)} ms`);
  return r;
}

runIfMain(import.meta.url, main);
