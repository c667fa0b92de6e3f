/** `internvl run`: one prompt, optionally with images; streams text or prints one JSON object. */
import { Command, Option } from 'commander';
import type { GenerationOptions } from '../generation.js';
import { InternVL, type LoadOptions } from '../model.js';
import { reportError } from './errors.js';
import { collect, floatOption, intOption, readStdin } from './options.js';

interface RunFlags {
  model: string;
  image: string[];
  maxTiles?: number;
  maxNewTokens: number;
  greedy?: boolean;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  system?: string;
  backend: 'cpu' | 'cuda' | 'auto';
  dtype?: 'bf16' | 'int8';
  int8Scheme?: 'per-channel' | 'per-group-128';
  json?: boolean;
  verbose?: boolean;
}

export function generationFromFlags(f: RunFlags): GenerationOptions {
  const sampling = f.temperature !== undefined || f.topP !== undefined || f.topK !== undefined;
  const g: GenerationOptions = { maxNewTokens: f.maxNewTokens, doSample: sampling && !f.greedy };
  if (f.temperature !== undefined) g.temperature = f.temperature;
  if (f.topP !== undefined) g.topP = f.topP;
  if (f.topK !== undefined) g.topK = f.topK;
  if (f.seed !== undefined) g.seed = f.seed;
  return g;
}

/** The load options the model flags (addModelFlags) ask for. */
export function loadOptionsFromFlags(f: {
  backend: 'cpu' | 'cuda' | 'auto';
  dtype?: 'bf16' | 'int8';
  int8Scheme?: 'per-channel' | 'per-group-128';
}): LoadOptions {
  return {
    backend: f.backend,
    ...(f.dtype !== undefined ? { dtype: f.dtype } : {}),
    ...(f.int8Scheme !== undefined ? { int8Scheme: f.int8Scheme } : {}),
  };
}

export function addModelFlags(cmd: Command): Command {
  return cmd
    .requiredOption('-m, --model <dir>', 'InternVL2 checkpoint directory (config.json, safetensors, tokenizer files)')
    .addOption(new Option('--backend <name>', 'where to run').choices(['cpu', 'cuda', 'auto']).default('auto'))
    .addOption(
      new Option('--dtype <type>', "weights: as stored, or int8 quantized at load (W8A16, the LLM's linear layers)").choices([
        'bf16',
        'int8',
      ]),
    )
    .addOption(
      new Option('--int8-scheme <scheme>', 'int8 scales per output channel or per 128 input columns').choices([
        'per-channel',
        'per-group-128',
      ]),
    )
    .option('--verbose', 'print stacks on errors and timings per stage');
}

export function runCommand(): Command {
  const cmd = new Command('run')
    .description('answer one prompt (with optional images), streaming the text to stdout')
    .argument('<prompt>', "the question; '-' reads it from stdin")
    .option('-i, --image <path>', 'an image file (repeat for several images)', collect, [])
    .option('--max-tiles <n>', 'most 448px tiles per image', intOption('--max-tiles', 1, 40))
    .option('--max-new-tokens <n>', 'most tokens to generate', intOption('--max-new-tokens', 1, 1 << 20), 1024)
    .option('--greedy', 'greedy decoding (the default unless a sampling flag is given)')
    .option('--temperature <t>', 'sample with this temperature', floatOption('--temperature', 1e-6, 100))
    .option('--top-p <p>', 'nucleus sampling mass', floatOption('--top-p', 1e-6, 1))
    .option('--top-k <k>', 'sample among the k most likely tokens (0 = all)', intOption('--top-k', 0, 1 << 20))
    .option('--seed <s>', 'sampling seed', intOption('--seed', 0, Number.MAX_SAFE_INTEGER))
    .option('--system <text>', 'system message (default: the model card\'s)')
    .option('--json', 'print one JSON object {text, tokenIds, promptTokens, imageTiles, timings} instead of streaming');
  addModelFlags(cmd);
  cmd.addHelpText(
    'after',
    `
Examples:
  $ internvl run -m ./InternVL2-8B -i photo.jpg "Describe this image."
  $ internvl run -m ./InternVL2-1B --json --greedy "Hello, who are you?"
  $ echo "What is 2+2?" | internvl run -m ./InternVL2-1B -`,
  );
  cmd.action(async (promptArg: string, flags: RunFlags) => {
    try {
      const question = promptArg === '-' ? (await readStdin()).replace(/\n$/, '') : promptArg;
      const loadStart = performance.now();
      const model = await InternVL.load(flags.model, {
        ...loadOptionsFromFlags(flags),
        ...(flags.system !== undefined ? { systemMessage: flags.system } : {}),
      });
      const loadMs = performance.now() - loadStart;
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      try {
        const result = await model.chat({
          question,
          images: flags.image,
          generation: generationFromFlags(flags),
          signal: ac.signal,
          partialOnAbort: true,
          ...(flags.maxTiles !== undefined ? { imageOptions: { maxTiles: flags.maxTiles } } : {}),
          ...(flags.json ? {} : { onToken: (text: string) => process.stdout.write(text) }),
        });
        if (flags.json) {
          process.stdout.write(
            `${JSON.stringify({
              text: result.response,
              tokenIds: result.tokenIds,
              promptTokens: result.usage.promptTokens,
              imageTiles: result.imageTiles,
              finishReason: result.finishReason,
              timings: { loadMs, ...result.timings },
            })}\n`,
          );
        } else {
          process.stdout.write('\n');
          if (flags.verbose) {
            const t = result.timings;
            process.stderr.write(
              `load ${loadMs.toFixed(0)} ms, preprocess ${t.preprocessMs.toFixed(0)} ms, generate ${t.generateMs.toFixed(0)} ms, ` +
                `${result.usage.promptTokens} prompt + ${result.usage.completionTokens} generated tokens\n`,
            );
          }
        }
      } finally {
        model.dispose();
      }
    } catch (e) {
      reportError(e, flags.verbose ?? false);
    }
  });
  return cmd;
}
