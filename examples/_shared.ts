/**
 * What every example shares: `-m DIR` picks the checkpoint (default: the bundled tiny
 * random-weight one, so examples run anywhere, printing nonsense text), `--backend`
 * the device, and a way to run main() when the file is executed directly.
 */
import { realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  // examples/ in the source tree, or build/examples-js/examples/ when compiled
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++, dir = dirname(dir)) {
    try {
      realpathSync(join(dir, 'test', 'fixtures', 'models'));
      return dir;
    } catch {
      /* keep looking upward */
    }
  }
  return process.cwd();
}

export const root = findRoot();
export const images = {
  wide: join(root, 'test', 'fixtures', 'images', 'wide.jpg'),
  tall: join(root, 'test', 'fixtures', 'images', 'tall.png'),
};

export interface ExampleArgs {
  model: string;
  backend: 'cpu' | 'cuda' | 'auto';
}

export function parseArgs(argv: string[]): ExampleArgs {
  const at = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    model: at('-m') ?? join(root, 'test', 'fixtures', 'models', 'tiny-internlm2'),
    backend: (at('--backend') as ExampleArgs['backend'] | undefined) ?? 'auto',
  };
}

export type Log = (line: string) => void;

/** Runs main when this module is the program (node build/examples-js/examples/x.js). */
export function runIfMain(url: string, main: (argv: string[], log: Log) => Promise<unknown>): void {
  const entry = process.argv[1] ? resolve(process.argv[1]) : '';
  if (entry === fileURLToPath(url)) {
    main(process.argv.slice(2), (l) => console.log(l)).catch((e) => {
      console.error(e);
      process.exit(1);
    });
  }
}
