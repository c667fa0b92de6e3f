/**
 * Who gets the vision encoded ahead: --vision-ahead / --no-vision-ahead (one addModelFlags, so
 * run, chat and serve alike) reach the load options as given, and from there the addon's load
 * options; with neither the key is left out and the engine keeps its default (off), so a CPU
 * model loaded from the flags encodes an image's tiles ahead only with --vision-ahead (stats).
 * What the vision thread computes is test/engine's.
 */
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { Command } from 'commander';
import { addModelFlags, loadOptionsFromFlags, runCommand } from '../../lib/cli/run.js';
import { chatCommand } from '../../lib/cli/chat.js';
import { serveCommand } from '../../lib/cli/serve.js';
import { InternVL } from '../../lib/model.js';
import { loadNative } from '../../lib/native.js';
import type { NativeLoadOptions } from '../../lib/nativeTypes.js';
import { fixturesDir, readModelGolden } from '../helpers/goldens.js';

function flags(args: string[]) {
  const cmd = addModelFlags(new Command().exitOverride()).argument('[prompt]');
  cmd.parse(['node', 'internvl', '-m', 'some/model', ...args, 'hi']);
  return loadOptionsFromFlags(cmd.opts() as Parameters<typeof loadOptionsFromFlags>[0]);
}

test('--vision-ahead and --no-vision-ahead are passed on; neither leaves the choice to the engine', () => {
  expect(flags(['--vision-ahead']).visionAhead).toBe(true);
  expect(flags(['--no-vision-ahead']).visionAhead).toBe(false);
  expect('visionAhead' in flags([])).toBe(false);
});

test('run, chat and serve all take both flags', () => {
  for (const cmd of [runCommand(), chatCommand(), serveCommand()]) {
    const longs = cmd.options.map((o) => o.long);
    expect({ command: cmd.name(), has: ['--vision-ahead', '--no-vision-ahead'].filter((f) => longs.includes(f)) }).toEqual({
      command: cmd.name(),
      has: ['--vision-ahead', '--no-vision-ahead'],
    });
  }
});

describe('a CPU model loaded from the flags', () => {
  const dir = join(fixturesDir, readModelGolden('tiny-qwen2').model_dir);
  const image = join(fixturesDir, 'images', 'wide.jpg');

  // What InternVL.load hands the addon for these command-line flags, and the tiles the engine
  // then encoded ahead over one image chat (a real load and a real chat).
  async function loadedWith(args: string[]): Promise<{ options: NativeLoadOptions; aheadTiles: number }> {
    const loadModel = jest.spyOn(loadNative(), 'loadModel');
    try {
      const model = await InternVL.load(dir, { ...flags(['--backend', 'cpu', ...args]), threads: 2 });
      try {
        await model.chat({ question: 'What is in the picture?', images: [image], generation: { maxNewTokens: 2 } });
        expect(loadModel).toHaveBeenCalledTimes(1);
        return { options: loadModel.mock.calls[0][2], aheadTiles: model.stats().visionAheadTiles };
      } finally {
        model.dispose();
      }
    } finally {
      loadModel.mockRestore();
    }
  }

  test('hands the addon visionAhead as given, and no visionAhead without a flag (then nothing is encoded ahead)', async () => {
    const on = await loadedWith(['--vision-ahead']);
    expect(on.options.visionAhead).toBe(true);
    expect(on.aheadTiles).toBeGreaterThan(0);
    const off = await loadedWith(['--no-vision-ahead']);
    expect(off.options.visionAhead).toBe(false);
    expect(off.aheadTiles).toBe(0);
    const neither = await loadedWith([]);
    expect('visionAhead' in neither.options).toBe(false);
    expect(neither.aheadTiles).toBe(0);
  });
});
