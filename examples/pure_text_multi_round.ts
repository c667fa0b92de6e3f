// Model card: pure-text conversation, two rounds (history carries the first answer).
import { InternVL } from '../lib/index.js';
import { type Log, parseArgs, runIfMain } from './_shared.js';

export async function main(argv: string[], log: Log) {
  const { model: dir, backend } = parseArgs(argv);
  await using model = await InternVL.load(dir, { backend });
  const generation = { maxNewTokens: 64 };
  const first = await model.chat({ question: 'Hello, who are you?', generation });
  log(`User: Hello, who are you?\nAssistant: ${first.response}`);
  const second = await model.chat({ question: 'Can you tell me a story?', history: first.history, generation });
  log(`User: Can you tell me a story?\nAssistant: ${second.response}`);
  return second;
}

runIfMain(import.meta.url, main);
