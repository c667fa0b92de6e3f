/** `internvl build`: (re)builds the native addon, for installs where npm skipped the install script. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Command } from 'commander';
import { packageRoot } from '../native.js';

export function buildCommand(): Command {
  return new Command('build')
    .description('build the native addon (CUDA backend when a CUDA toolkit with cuBLAS is found)')
    .option('--cuda <mode>', 'AUTO, ON or OFF', 'AUTO')
    .action((flags: { cuda: string }) => {
      const r = spawnSync(process.execPath, [join(packageRoot, 'scripts', 'build-native.mjs')], {
        cwd: packageRoot,
        stdio: 'inherit',
        env: { ...process.env, INTERNVL_CUDA: flags.cuda.toUpperCase() },
      });
      process.exit(r.status ?? 1);
    });
}
