/** `internvl run`: one prompt, optionally with images; streams text or prints one JSON object. */
import { Command, Option } from 'commander';
import { InternVLError } from '../errors.js';
import type { GenerationOptions } from '../generation.js';
import type { LoadOptions } from '../model.js';
import { reportError } from './errors.js';
import { loadModelWithProgress, loadVideoWithProgress, timingLine, videoQuestion } from './load.js';
import { collect, deviceMapOption, floatOption, intOption, readStdin } from './options.js';
import type { DeviceMapSpec } from '../deviceMap.js';

interface RunFlags {
  model: string;
  image: string[];
  video?: string;
  numSegments?: number;
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
  kvCacheTokens?: number;
  deviceMap?: DeviceMapSpec;
  prefixCache?: boolean;
  prefillChunkTokens?: number;
  mixedSteps?: boolean;
  visionAhead?: boolean;
}): LoadOptions {
  return {
    backend: f.backend,
    ...(f.prefixCache === false ? { prefixCache: false } : {}),
    ...(f.prefillChunkTokens !== undefined ? { prefillChunkTokens: f.prefillChunkTokens } : {}),
    ...(f.mixedSteps !== undefined ? { mixedSteps: f.mixedSteps } : {}),
    ...(f.visionAhead !== undefined ? { visionAhead: f.visionAhead } : {}),
    ...(f.kvCacheTokens !== undefined ? { kvCacheTokens: f.kvCacheTokens } : {}),
    ...(f.deviceMap !== undefined ? { deviceMap: f.deviceMap } : {}),
    ...(f.dtype !== undefined ? { dtype: f.dtype } : {}),
    ...(f.int8Scheme !== undefined ? { int8Scheme: f.int8Scheme } : {}),
  };
}

export function addModelFlags(cmd: Command): Command {
  return cmd
    .requiredOption('-m, --model <dir|id>', 'InternVL2 checkpoint directory, or a Hub model id (org/name[@revision], downloaded into the HF cache)')
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
    .option('--kv-cache-tokens <n>', 'KV cache capacity in tokens, shared by all requests (default 8192)', intOption('--kv-cache-tokens', 16, 2 ** 30))
    .option('--no-prefix-cache', "don't keep finished conversations' KV cache for reuse by later prompts")
    .option('--prefill-chunk-tokens <n>', 'prompt tokens per prefill step between decode steps (default 2048)', intOption('--prefill-chunk-tokens', 1, 2 ** 30))
    .option('--mixed-steps', 'decode running requests inside each prefill step, one forward for both (default on CUDA)')
    .option('--no-mixed-steps', 'decode running requests in a step of their own after each prefill step')
    .option('--vision-ahead', "encode each request's images as soon as it arrives, on a vision thread and stream of their own, while running requests decode (default off)")
    .option('--no-vision-ahead', "encode a request's images in the engine thread when its prefill comes")
    .option('--device-map <map>', "split the model over GPUs: auto (by free memory), card (the model card's split_model), or devices per layer (0,0,1,1 or JSON)", deviceMapOption)
    .option('--verbose', 'print stacks on errors and timings per stage');
}

export function runCommand(): Command {
  const cmd = new Command('run')
    .description('answer one prompt (with optional images), streaming the text to stdout')
    .argument('<prompt>', "the question; '-' reads it from stdin")
    .option('-i, --image <path>', 'an image file (repeat for several images)', collect, [])
    .option('--video <path>', "a video: frames sampled as the model card's load_video (needs ffmpeg)")
    .option('--num-segments <n>', 'frames sampled from --video', intOption('--num-segments', 1, 4096), 8)
    .option('--max-tiles <n>', 'most 448px tiles per image (per frame with --video, default 1 there)', intOption('--max-tiles', 1, 40))
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
  $ internvl run -m OpenGVLab/InternVL2-1B -i photo.jpg "Describe this image."
  $ internvl run -m ./InternVL2-8B --video clip.mp4 "What happens in this video?"
  $ internvl run -m ./InternVL2-1B --json --greedy "Hello, who are you?"
  $ echo "What is 2+2?" | internvl run -m ./InternVL2-1B -`,
  );
  cmd.action(async (promptArg: string, flags: RunFlags) => {
    try {
      let question = promptArg === '-' ? (await readStdin()).replace(/\n$/, '') : promptArg;
      if (flags.video !== undefined && flags.image.length > 0) {
        throw new InternVLError('ERR_INVALID_ARG', 'Give either --video or --image, not both');
      }
      const { model, loadMs } = await loadModelWithProgress(
        flags.model,
        { ...loadOptionsFromFlags(flags), ...(flags.system !== undefined ? { systemMessage: flags.system } : {}) },
        flags,
      );
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      try {
        let frames: { pixelValues: Float32Array; numPatchesList: number[] } | undefined;
        let videoMs: number | undefined;
        if (flags.video !== undefined) {
          const t = performance.now();
          const v = await loadVideoWithProgress(
            flags.video,
            { numSegments: flags.numSegments ?? 8, maxTilesPerFrame: flags.maxTiles ?? 1, imageSize: model.info.imageSize, signal: ac.signal },
            flags,
          );
          videoMs = performance.now() - t;
          frames = { pixelValues: v.pixelValues, numPatchesList: v.numPatchesList };
          question = videoQuestion(v.numPatchesList.length, question);
        }
        const result = await model.chat({
          question,
          ...(frames ? frames : { images: flags.image }),
          generation: generationFromFlags(flags),
          signal: ac.signal,
          partialOnAbort: true,
          ...(flags.maxTiles !== undefined && !frames ? { imageOptions: { maxTiles: flags.maxTiles } } : {}),
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
              timings: { loadMs, ...(videoMs !== undefined ? { videoMs } : {}), ...result.timings },
            })}\n`,
          );
        } else {
          process.stdout.write('\n');
          if (flags.verbose) {
            process.stderr.write(timingLine({ loadMs, videoMs, ...result.timings }, result.usage.promptTokens, result.usage.completionTokens));
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
