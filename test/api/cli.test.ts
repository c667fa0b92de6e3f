/**
 * The `internvl` CLI as a user runs it (the compiled dist/, built by `pretest`):
 * `run --greedy --json` reproduces the PyTorch goldens through the real image path,
 * and failures print one clear line with a non-zero exit.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { type GoldenCase, fixturesDir, readModelGolden } from '../helpers/goldens.js';

const cli = join(fixturesDir, '..', '..', 'dist', 'cli', 'main.js');

function internvl(args: string[], input?: string) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', input, timeout: 60_000 });
}

test.each(['tiny-yi', 'tiny-phi3'])('%s: run --greedy --json on the fixture image equals the golden', (family) => {
  const golden = readModelGolden(family);
  const c = golden.cases.find((x) => x.name === 'image') as GoldenCase;
  const image = join(fixturesDir, golden.images.wide.file);
  const r = internvl(['run', '-m', join(fixturesDir, golden.model_dir), '-i', image, '--greedy', '--max-new-tokens', '24', '--backend', 'cpu', '--json', c.question as string]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const out = JSON.parse(r.stdout) as { text: string; tokenIds: number[]; promptTokens: number; imageTiles: number[]; timings: Record<string, number> };
  expect(out.tokenIds).toEqual(c.generated_ids);
  expect(out.text).toBe(c.response);
  expect(out.promptTokens).toBe(c.input_ids?.length);
  expect(out.imageTiles).toEqual([golden.images.wide.tiles]);
  expect(out.timings.totalMs).toBeGreaterThan(0);
  // the engine's figures come through the spread of chat()'s timings
  expect(out.timings.queueMs).toBeGreaterThanOrEqual(0);
  expect(out.timings.firstTokenMs).toBeGreaterThan(out.timings.queueMs);
  expect(out.timings.firstTokenMs).toBeLessThanOrEqual(out.timings.generateMs);
});

test('run streams text and reads the prompt from stdin with -', () => {
  const golden = readModelGolden('tiny-qwen2');
  const c = golden.cases.find((x) => x.name === 'text') as GoldenCase;
  const r = internvl(['run', '-m', join(fixturesDir, golden.model_dir), '--greedy', '--max-new-tokens', '24', '--backend', 'cpu', '-'], `${c.question}\n`);
  expect(r.status).toBe(0);
  expect(r.stdout).toBe(`${c.response}\n`);
});

test('run --dtype int8 (both schemes) loads int8 weights and answers; a bad --dtype is refused', () => {
  const golden = readModelGolden('tiny-qwen2');
  const c = golden.cases.find((x) => x.name === 'text') as GoldenCase;
  const dir = join(fixturesDir, golden.model_dir);
  for (const scheme of ['per-channel', 'per-group-128']) {
    const r = internvl(['run', '-m', dir, '--dtype', 'int8', '--int8-scheme', scheme, '--greedy', '--max-new-tokens', '8', '--backend', 'cpu', '--json', c.question as string]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { tokenIds: number[]; promptTokens: number };
    expect(out.tokenIds.length).toBeGreaterThan(0);
    expect(out.promptTokens).toBe(c.input_ids?.length);
  }
  const bad = internvl(['run', '-m', dir, '--dtype', 'int4', 'hi']);
  expect(bad.status).not.toBe(0);
  expect(bad.stderr).toMatch(/--dtype.*int4.*bf16, int8/);
});

test('tokenize --json prints the ids the reference tokenizer gives', () => {
  const golden = readModelGolden('tiny-internlm2');
  const c = golden.cases.find((x) => x.name === 'text') as GoldenCase;
  const r = internvl(['tokenize', '-m', join(fixturesDir, golden.model_dir), '--json', c.prompt as string]);
  expect(r.status).toBe(0);
  expect((JSON.parse(r.stdout) as { ids: number[] }).ids).toEqual(c.input_ids);
});

test.each([
  [['run', '-m', '/nonexistent/model', 'hi'], /^internvl: error \[ERR_CONFIG\]: .*\/nonexistent\/model/],
  [['run', '-m', join(fixturesDir, 'models', 'tiny-yi'), '--max-new-tokens', '0', 'hi'], /--max-new-tokens must be an integer between 1 and/],
  [['run', '-m', join(fixturesDir, 'models', 'tiny-yi'), '-i', '/nonexistent.png', '--backend', 'cpu', 'hi'], /^internvl: error \[ERR_IMAGE\]: Cannot read image \(\/nonexistent\.png\): file not found/],
])('%j fails with one clear line and a non-zero exit', (args, message) => {
  const r = internvl(args);
  expect(r.status).not.toBe(0);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace without --verbose
});

test('run --device-map splits the model over two CPU devices and still equals the golden; info --device-map prints the plan', () => {
  const golden = readModelGolden('tiny-yi');
  const c = golden.cases.find((x) => x.name === 'image') as GoldenCase;
  const dir = join(fixturesDir, golden.model_dir);
  const image = join(fixturesDir, golden.images.wide.file);
  const r = internvl(['run', '-m', dir, '-i', image, '--greedy', '--max-new-tokens', '24', '--backend', 'cpu', '--device-map', '0,1', '--json', c.question as string]);
  expect(r.status).toBe(0);
  const out = JSON.parse(r.stdout) as { tokenIds: number[] };
  expect(out.tokenIds).toEqual(c.generated_ids);
  const plan = internvl(['info', '-m', dir, '--device-map', '0,1', '--json']);
  expect(plan.status).toBe(0);
  const p = JSON.parse(plan.stdout) as { devicePlan: { map: { layers: number[] }; devices: { device: number; layers: number; modules: string[] }[] } };
  expect(p.devicePlan.map.layers).toEqual([0, 1]);
  expect(p.devicePlan.devices.map((d) => [d.device, d.layers, d.modules])).toEqual([
    [0, 1, ['vision', 'embed', 'head']],
    [1, 1, []],
  ]);
  const bad = internvl(['run', '-m', dir, '--backend', 'cpu', '--device-map', '0,0,1', 'hi']);
  expect(bad.status).not.toBe(0);
  expect(bad.stderr).toMatch(/ERR_INVALID_ARG.*layers lists 3 devices but the model has 2 decoder layers/);
});

test('run --prefill-chunk-tokens 5 --no-prefix-cache --mixed-steps still equals the golden (the prompt prefilled in chunks)', () => {
  const golden = readModelGolden('tiny-phi3');
  const c = golden.cases.find((x) => x.name === 'image') as GoldenCase;
  const image = join(fixturesDir, golden.images.wide.file);
  const r = internvl(['run', '-m', join(fixturesDir, golden.model_dir), '-i', image, '--greedy', '--max-new-tokens', '24', '--backend', 'cpu', '--prefill-chunk-tokens', '5', '--no-prefix-cache', '--mixed-steps', '--json', c.question as string]);
  expect(r.status).toBe(0);
  expect((JSON.parse(r.stdout) as { tokenIds: number[] }).tokenIds).toEqual(c.generated_ids);
  const bad = internvl(['run', '-m', join(fixturesDir, golden.model_dir), '--prefill-chunk-tokens', '0', 'hi']);
  expect(bad.status).not.toBe(0);
  expect(bad.stderr).toMatch(/--prefill-chunk-tokens must be an integer between 1 and/);
});
