/**
 * Who gets mixed steps: --mixed-steps / --no-mixed-steps reach the load options as given, and
 * without either the engine decides by model (lib/engine/mixedStepsDefault.ts), checked here
 * against the released configs' language-model widths (bench/configs, copied from the Hub).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { addModelFlags, loadOptionsFromFlags } from '../../lib/cli/run.js';
import { mixedStepsDefault } from '../../lib/engine/mixedStepsDefault.js';
import { fixturesDir } from '../helpers/goldens.js';

function flags(args: string[]) {
  const cmd = addModelFlags(new Command().exitOverride()).argument('[prompt]');
  cmd.parse(['node', 'internvl', '-m', 'some/model', ...args, 'hi']);
  return loadOptionsFromFlags(cmd.opts() as Parameters<typeof loadOptionsFromFlags>[0]);
}

test('--mixed-steps and --no-mixed-steps are passed on; neither leaves the choice to the engine', () => {
  expect(flags(['--mixed-steps']).mixedSteps).toBe(true);
  expect(flags(['--no-mixed-steps']).mixedSteps).toBe(false);
  expect('mixedSteps' in flags([])).toBe(false);
});

test('by default: on for the CUDA models of 26B and up, off for 1B-8B and on the CPU backend', () => {
  const width = (name: string) =>
    (JSON.parse(readFileSync(join(fixturesDir, '..', '..', 'bench', 'configs', `InternVL2-${name}.json`), 'utf8')) as {
      llm_config: { hidden_size: number };
    }).llm_config.hidden_size;
  for (const name of ['26B', '40B', '76B']) {
    expect(mixedStepsDefault('cuda', width(name))).toBe(true);
    expect(mixedStepsDefault('cpu', width(name))).toBe(false);
  }
  for (const name of ['1B', '2B', '4B', '8B']) expect(mixedStepsDefault('cuda', width(name))).toBe(false);
});
