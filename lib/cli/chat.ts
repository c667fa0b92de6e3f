/** `internvl chat`: interactive multi-round chat with history, /image, /reset and /exit. */
import { createInterface } from 'node:readline/promises';
import { Command } from 'commander';
import type { HistoryTurn } from '../chatTypes.js';
import { reportError } from './errors.js';
import { loadModelWithProgress, timingLine } from './load.js';
import { addModelFlags, generationFromFlags, loadOptionsFromFlags } from './run.js';
import { collect, intOption } from './options.js';

export function chatCommand(): Command {
  const cmd = new Command('chat')
    .description('interactive chat; images stay part of the conversation (/image PATH adds one, /reset clears, /exit quits)')
    .option('-i, --image <path>', 'an image to talk about (repeatable)', collect, [])
    .option('--max-new-tokens <n>', 'most tokens per answer', intOption('--max-new-tokens', 1, 1 << 20), 1024);
  addModelFlags(cmd);
  cmd.action(async (flags: { model: string; image: string[]; maxNewTokens: number; backend: 'cpu' | 'cuda' | 'auto'; dtype?: 'bf16' | 'int8'; int8Scheme?: 'per-channel' | 'per-group-128'; verbose?: boolean }) => {
    try {
      const { model, loadMs } = await loadModelWithProgress(flags.model, loadOptionsFromFlags(flags), {});
      if (flags.verbose) process.stderr.write(`load ${loadMs.toFixed(0)} ms\n`);
      const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });
      // The iterator buffers lines that arrive while an answer is generated (piped input).
      const input = rl[Symbol.asyncIterator]();
      rl.setPrompt('> ');
      let images = [...flags.image];
      let history: HistoryTurn[] = [];
      try {
        for (;;) {
          rl.prompt();
          const next = await input.next();
          if (next.done) break; // stdin closed
          const line = (next.value as string).trim();
          if (line === '' ) continue;
          if (line === '/exit' || line === '/quit') break;
          if (line === '/reset') {
            history = [];
            images = [];
            process.stdout.write('(history and images cleared)\n');
            continue;
          }
          if (line.startsWith('/image ')) {
            images.push(line.slice(7).trim());
            history = []; // the reference re-encodes a conversation's images from the first turn
            process.stdout.write(`(image added; ${images.length} in this conversation; history restarted)\n`);
            continue;
          }
          const ac = new AbortController();
          const onSigint = () => ac.abort();
          process.once('SIGINT', onSigint);
          try {
            const r = await model.chat({
              question: line,
              images,
              history,
              generation: generationFromFlags({ ...flags, image: images }),
              signal: ac.signal,
              partialOnAbort: true,
              onToken: (t) => process.stdout.write(t),
            });
            process.stdout.write('\n');
            if (flags.verbose) process.stderr.write(timingLine(r.timings, r.usage.promptTokens, r.usage.completionTokens));
            history = r.history;
          } finally {
            process.removeListener('SIGINT', onSigint);
          }
        }
      } finally {
        rl.close();
        model.dispose();
      }
    } catch (e) {
      reportError(e, flags.verbose ?? false);
    }
  });
  return cmd;
}
