/** `internvl info`: what this build can run on and, with -m, what a checkpoint is. */
import { Command } from 'commander';
import { readModelConfig } from '../config.js';
import { runtimeInfo } from '../native.js';
import { reportError } from './errors.js';

const GiB = 1024 ** 3;

export function infoCommand(): Command {
  return new Command('info')
    .description('show the addon build, backends and GPUs (and a checkpoint\'s configuration with -m)')
    .option('-m, --model <dir>', 'checkpoint directory to describe')
    .option('--json', 'print JSON')
    .option('--verbose', 'print stacks on errors')
    .action(async (flags: { model?: string; json?: boolean; verbose?: boolean }) => {
      try {
        const info = runtimeInfo();
        const model = flags.model ? await readModelConfig(flags.model) : undefined;
        if (flags.json) {
          process.stdout.write(`${JSON.stringify({ runtime: info, model }, null, 2)}\n`);
          return;
        }
        process.stdout.write(`internvl-node addon ${info.version}; backends: ${info.backends.join(', ')}\n`);
        if (info.cuda.devices.length === 0) process.stdout.write(`CUDA: ${info.cuda.problem ?? 'none'}\n`);
        for (const d of info.cuda.devices) {
          process.stdout.write(
            `GPU ${d.index}: ${d.name} (sm_${d.computeCapability.replace('.', '')}, ${d.multiprocessors} SMs), ` +
              `${(d.freeMemory / GiB).toFixed(1)} GiB free of ${(d.totalMemory / GiB).toFixed(1)} GiB\n`,
          );
        }
        if (model) process.stdout.write(`model: ${JSON.stringify(model, null, 2)}\n`);
      } catch (e) {
        reportError(e, flags.verbose ?? false);
      }
    });
}
