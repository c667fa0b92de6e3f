/**
 * A Hub model id end to end, against the mock Hub on loopback: InternVL.load('org/name')
 * answers exactly as loading the checkpoint directory does (the PyTorch goldens, CPU
 * backend), and the CLI (`internvl pull`, `run -m org/name`, `tokenize -m org/name`) as a
 * user runs it (the compiled dist/, built by `pretest`).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatBytes } from '../../lib/cli/progress.js';
import { InternVL } from '../../lib/model.js';
import { type GoldenCase, fixturesDir, goldenPixels, readModelGolden } from '../helpers/goldens.js';
import { MockHub, fakeCommit, repoFiles } from '../helpers/mockHub.js';

const REPO = 'test-org/tiny-yi';
const MAIN = fakeCommit('main');
const yiDir = join(fixturesDir, 'models', 'tiny-yi');
const golden = readModelGolden('tiny-yi');
const imageCase = golden.cases.find((c) => c.name === 'image') as GoldenCase;
const cli = join(fixturesDir, '..', '..', 'dist', 'cli', 'main.js');

let hub: MockHub;
let home: string;
let cacheDir: string;

beforeAll(async () => {
  hub = new MockHub();
  hub.addRepo(REPO, { commits: new Map([[MAIN, repoFiles(yiDir, { 'modeling_internvl_chat.py': '# not downloaded\n' })]]), refs: new Map([['main', MAIN]]) });
  await hub.start();
});
afterAll(() => hub.close());

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'internvl-hfhome-'));
  cacheDir = join(home, 'hub');
  hub.resetLog();
});
afterEach(() => rm(home, { recursive: true, force: true }));

/** The CLI with an environment that points at the mock Hub and this test's cache (nothing from this machine's HF setup). */
function internvl(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HF_') && !k.startsWith('HUGGING') && k !== 'INTERNVL_PROGRESS'));
  const child = spawn(process.execPath, [cli, ...args], { env: { ...base, HF_HOME: home, HF_ENDPOINT: hub.url, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // Async (not spawnSync): the mock Hub runs on this process's event loop.
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
}

const chatArgs = () => ({
  question: imageCase.question as string,
  pixelValues: goldenPixels(imageCase.images ?? []),
  numPatchesList: imageCase.num_patches_list,
  generation: { maxNewTokens: 24 },
});

test('InternVL.load(org/name) gives the same greedy answer as loading the directory, and loads again offline', async () => {
  const hubOptions = { endpoint: hub.url, cacheDir, token: false as const, env: {} };
  const fromHub = await InternVL.load(REPO, { backend: 'cpu', hub: hubOptions });
  let hubTokens: number[];
  try {
    expect(fromHub.repo).toBe(REPO);
    expect(fromHub.dir).toBe(join(cacheDir, 'models--test-org--tiny-yi', 'snapshots', MAIN));
    const r = await fromHub.chat(chatArgs());
    hubTokens = r.tokenIds;
    expect(r.tokenIds).toEqual(imageCase.generated_ids);
    expect(r.response).toBe(imageCase.response);
  } finally {
    fromHub.dispose();
  }
  const fromDir = await InternVL.load(yiDir, { backend: 'cpu' });
  try {
    expect(fromDir.repo).toBeUndefined();
    expect((await fromDir.chat(chatArgs())).tokenIds).toEqual(hubTokens);
  } finally {
    fromDir.dispose();
  }
  hub.resetLog();
  const offline = await InternVL.load(REPO, { backend: 'cpu', hub: { ...hubOptions, offline: true } });
  offline.dispose();
  expect(offline.dir).toBe(fromHub.dir);
  expect(hub.requests).toEqual([]);
});

test('internvl pull --json prints one JSON object and nothing else; run -m org/name then answers offline as the golden', async () => {
  const pulled = await internvl(['pull', REPO, '--json'], { HF_HUB_CACHE: cacheDir });
  expect(pulled.stderr).toBe('');
  expect(pulled.status).toBe(0);
  const out = JSON.parse(pulled.stdout) as { repo: string; commit: string; dir: string; files: Array<{ path: string }>; bytesFetched: number; bytesTotal: number; ms: number };
  expect(pulled.stdout.trim().split('\n')).toHaveLength(1);
  expect(out).toMatchObject({ repo: REPO, revision: 'main', commit: MAIN, fromCache: false, dir: join(cacheDir, 'models--test-org--tiny-yi', 'snapshots', MAIN) });
  expect(out.files.map((f) => f.path).sort()).toEqual((await readdir(yiDir)).sort());
  expect(out.bytesFetched).toBe(out.bytesTotal);

  hub.resetLog();
  const image = join(fixturesDir, golden.images.wide.file);
  const r = await internvl(
    ['run', '-m', REPO, '-i', image, '--greedy', '--max-new-tokens', '24', '--backend', 'cpu', '--json', imageCase.question as string],
    { HF_HUB_CACHE: cacheDir, HF_HUB_OFFLINE: '1' },
  );
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const answer = JSON.parse(r.stdout) as { tokenIds: number[]; text: string };
  expect(answer.tokenIds).toEqual(imageCase.generated_ids);
  expect(answer.text).toBe(imageCase.response);
  expect(hub.requests).toEqual([]);
});

test('internvl pull on a pipe: plain progress lines and a summary on stderr, the snapshot directory on stdout', async () => {
  const r = await internvl(['pull', REPO, '--concurrency', '2'], { HF_HUB_CACHE: cacheDir, INTERNVL_PROGRESS: 'plain' });
  expect(r.status).toBe(0);
  expect(r.stdout).toBe(`${join(cacheDir, 'models--test-org--tiny-yi', 'snapshots', MAIN)}\n`);
  const size = formatBytes([...repoFiles(yiDir).values()].reduce((a, c) => a + c.length, 0)).replace('.', '\\.');
  expect(r.stderr).toMatch(new RegExp(`^downloading test-org/tiny-yi: 25% \\(.+ of ${size}\\), \\d/8 files$`, 'm'));
  expect(r.stderr).toMatch(new RegExp(`^downloading test-org/tiny-yi: done, ${size} \\(8/8 files\\) in [\\d.]+ s`, 'm'));
  expect(r.stderr).toMatch(new RegExp(`^internvl: test-org/tiny-yi@main \\(commit ${MAIN.slice(0, 12)}\\): 8 files, ${size} \\(${size} downloaded\\) in`, 'm'));
  expect(r.stderr).not.toMatch(/\r|\x1b\[/); // no bar redraws off a TTY

  const again = await internvl(['pull', REPO], { HF_HUB_CACHE: cacheDir });
  expect(again.status).toBe(0);
  expect(again.stderr).toMatch(/\(all already cached\)/);
  expect(again.stderr).not.toMatch(/downloading/);

  // On a terminal (forced here): one line redrawn in place, ending at 100% with bytes, speed and time.
  const tty = await internvl(['pull', REPO, '--cache-dir', join(home, 'other-cache')], { INTERNVL_PROGRESS: 'tty' });
  expect(tty.status).toBe(0);
  expect(tty.stderr).toMatch(new RegExp(`\\r\\x1b\\[2Kdownloading test-org/tiny-yi \\[█+\\] 100% ${size}/${size} [\\d.]+ [KMG]?i?B/s \\d+s 8/8 files\\n`));
  expect(tty.stdout).toBe(`${join(home, 'other-cache', 'models--test-org--tiny-yi', 'snapshots', MAIN)}\n`);
});

test('internvl tokenize -m org/name downloads only the config and tokenizer files', async () => {
  const textCase = golden.cases.find((c) => c.name === 'text') as GoldenCase;
  const r = await internvl(['tokenize', '-m', REPO, '--json', textCase.prompt as string], { HF_HUB_CACHE: cacheDir });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect((JSON.parse(r.stdout) as { ids: number[] }).ids).toEqual(textCase.input_ids);
  const fetched = hub.requests.filter((q) => q.method === 'GET' && q.server === 'hub' && q.path !== '*').map((q) => q.path);
  expect(fetched.sort()).toEqual(['added_tokens.json', 'config.json', 'special_tokens_map.json', 'tokenizer.model', 'tokenizer_config.json']);
});

test('internvl info -m org/name --device-map 0,1 fetches config and tokenizer only and prints the sizes and the plan', async () => {
  const r = await internvl(['info', '-m', REPO, '--device-map', '0,1', '--json'], { HF_HUB_CACHE: cacheDir });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const out = JSON.parse(r.stdout) as { model: { summary: { source: string } }; devicePlan: { map: { layers: number[] } } };
  expect(out.model.summary.source).toBe('config');
  expect(out.devicePlan.map.layers).toEqual([0, 1]);
  const fetched = hub.requests.filter((q) => q.method === 'GET' && q.server === 'hub' && q.path !== '*').map((q) => q.path);
  expect(fetched.every((f) => !f?.endsWith('.safetensors'))).toBe(true);
});

test.each([
  [['pull', 'test-org/missing'], {}, 1, /^internvl: error \[ERR_HUB_NOT_FOUND\]: Model test-org\/missing was not found on http:\/\/127\.0\.0\.1:\d+/],
  [['pull', 'not/a/model'], {}, 2, /^internvl: error \[ERR_INVALID_ARG\]: Expected a Hub model id like OpenGVLab\/InternVL2-8B/],
  [['pull', REPO], { HF_HUB_OFFLINE: '1' }, 1, /^internvl: error \[ERR_HUB_OFFLINE\]: test-org\/tiny-yi@main is not in the cache .* HF_HUB_OFFLINE is set: run "internvl pull test-org\/tiny-yi" with network access first/],
  [['run', '-m', 'test-org/missing', '--backend', 'cpu', 'hi'], {}, 1, /^internvl: error \[ERR_HUB_NOT_FOUND\]: Model test-org\/missing was not found on .*; there is no local directory "test-org\/missing" either$/m],
])('%j fails with one clear line', async (args, env, status, message) => {
  const r = await internvl(args, { HF_HUB_CACHE: cacheDir, ...env });
  expect(r.status).toBe(status);
  expect(r.stderr).toMatch(message);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
});
