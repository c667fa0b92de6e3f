/** `internvl tokenize`: token ids and pieces of a text, to debug prompts. */
import { Command } from 'commander';
import { resolveModel } from '../hub/pull.js';
import { isHubModelRef } from '../hub/repoId.js';
import { loadTokenizer } from '../text/tokenizer.js';
import { reportError } from './errors.js';
import { readStdin } from './options.js';

export function tokenizeCommand(): Command {
  return new Command('tokenize')
    .description('print the token ids (and pieces) of a text with the model\'s tokenizer')
    .requiredOption('-m, --model <dir|id>', 'checkpoint directory or Hub model id (only the tokenizer files are read or downloaded)')
    .option('--no-special', 'do not add BOS/EOS special tokens')
    .option('--json', 'print {ids, tokens} as JSON')
    .option('--verbose', 'print stacks on errors')
    .argument('<text>', "the text; '-' reads stdin")
    .addHelpText('after', '\nExamples:\n  $ internvl tokenize -m ./InternVL2-8B "<|im_start|>user\\nHello<|im_end|>"\n  $ internvl tokenize -m ./InternVL2-1B --json --no-special "你好"')
    .action(async (textArg: string, flags: { model: string; special: boolean; json?: boolean; verbose?: boolean }) => {
      try {
        const text = textArg === '-' ? await readStdin() : textArg;
        const dir = isHubModelRef(flags.model) ? await resolveModel(flags.model, { files: 'tokenizer' }) : flags.model;
        const tok = await loadTokenizer(dir);
        const ids = tok.encode(text, { addSpecialTokens: flags.special });
        const tokens = ids.map((id) => tok.idToToken(id) ?? `<${id}>`);
        if (flags.json) process.stdout.write(`${JSON.stringify({ ids, tokens })}\n`);
        else {
          for (let i = 0; i < ids.length; i++) process.stdout.write(`${String(ids[i]).padStart(8)}  ${JSON.stringify(tokens[i])}\n`);
          process.stdout.write(`${ids.length} tokens\n`);
        }
      } catch (e) {
        reportError(e, flags.verbose ?? false);
      }
    });
}
