/**
 * pullModel / resolveModel against the mock Hub on loopback (test/helpers/mockHub.ts):
 * the huggingface_hub cache layout, file selection, revision pinning, offline mode, the
 * Hub's errors, resume with Range after a dropped connection, stalls, retries, checksums,
 * the disk-space check, abort and bounded concurrency. No test touches the internet.
 */
import { lstat, mkdtemp, readFile, readdir, readlink, rm, stat, unlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InternVLError } from '../../lib/errors.js';
import { type PullOptions, pullModel, resolveModel } from '../../lib/hub/pull.js';
import { fixturesDir } from '../helpers/goldens.js';
import { MockHub, fakeCommit, gitBlobSha1, isLfs, repoFiles, sha256 } from '../helpers/mockHub.js';

const REPO = 'test-org/tiny-yi';
const MAIN = fakeCommit('main');
const V1 = fakeCommit('v1.0');
const SHARD1 = 'model-00001-of-00002.safetensors';
const yiDir = join(fixturesDir, 'models', 'tiny-yi');
const internlmDir = join(fixturesDir, 'models', 'tiny-internlm2');
const yiFiles = repoFiles(yiDir);
const mainFiles = repoFiles(yiDir, {
  'modeling_internvl_chat.py': '# the Python modeling code: never downloaded\n',
  'pytorch_model.bin': Buffer.alloc(5000, 7),
  'README.md': '# tiny-yi\n',
  'examples/image1.jpg': Buffer.alloc(3000, 1),
});

let hub: MockHub;
let cacheDir: string;

beforeAll(async () => {
  hub = new MockHub();
  hub.addRepo(REPO, { commits: new Map([[MAIN, mainFiles], [V1, repoFiles(internlmDir)]]), refs: new Map([['main', MAIN], ['v1.0', V1]]) });
  hub.addRepo('test-org/gated', { commits: new Map([[MAIN, yiFiles]]), refs: new Map([['main', MAIN]]), gated: true });
  hub.addRepo('test-org/only-bin', {
    commits: new Map([[MAIN, new Map([['config.json', Buffer.from('{}')], ['pytorch_model.bin', Buffer.alloc(100)]])]]),
    refs: new Map([['main', MAIN]]),
  });
  await hub.start();
});
afterAll(() => hub.close());

beforeEach(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), 'internvl-hub-'));
  hub.clearFaults();
  hub.resetLog();
  hub.bareListing = false;
});
afterEach(() => rm(cacheDir, { recursive: true, force: true }));

/** Options that isolate a test: its own cache, the mock endpoint, no token or env from this machine, fast retries. */
function opts(extra: PullOptions = {}): PullOptions {
  return { endpoint: hub.url, cacheDir, token: false, env: {}, timeoutMs: 5000, retry: { retries: 3, baseDelayMs: 5, maxDelayMs: 20 }, ...extra };
}

const repoRoot = () => join(cacheDir, 'models--test-org--tiny-yi');
const etagOf = (path: string, content: Buffer) => (isLfs(path) ? sha256(content) : gitBlobSha1(content));

async function expectCode(p: Promise<unknown>, code: string, message?: RegExp): Promise<InternVLError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(InternVLError);
  expect((e as InternVLError).code).toBe(code);
  if (message) expect((e as InternVLError).message).toMatch(message);
  return e as InternVLError;
}

test('pulls only the files the runtime reads into the huggingface_hub layout (snapshot symlinks → blobs, refs/main)', async () => {
  const r = await pullModel(REPO, opts());
  expect(r.commit).toBe(MAIN);
  expect(r.revision).toBe('main');
  expect(r.dir).toBe(join(repoRoot(), 'snapshots', MAIN));
  expect(r.fromCache).toBe(false);
  const names = [...yiFiles.keys()].sort();
  expect((await readdir(r.dir)).sort()).toEqual(names);
  expect(r.files.map((f) => f.path)).toEqual(names);
  for (const name of names) {
    const content = yiFiles.get(name) as Buffer;
    const link = join(r.dir, name);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe(join('..', '..', 'blobs', etagOf(name, content)));
    expect((await readFile(link)).equals(content)).toBe(true);
  }
  expect(await readFile(join(repoRoot(), 'refs', 'main'), 'utf8')).toBe(MAIN);
  expect((await readdir(join(repoRoot(), 'blobs'))).filter((f) => f.endsWith('.incomplete'))).toEqual([]);
  const total = names.reduce((a, n) => a + (yiFiles.get(n) as Buffer).length, 0);
  expect(r.bytesTotal).toBe(total);
  expect(r.bytesFetched).toBe(total);
  // Never asked for: the Python code, the .bin weights, the README, files in subfolders.
  for (const skipped of ['modeling_internvl_chat.py', 'pytorch_model.bin', 'README.md', 'examples/image1.jpg']) {
    expect(hub.requests.filter((q) => q.path === skipped)).toEqual([]);
  }
  // Files are fetched by commit, not by the moving branch name.
  expect(hub.requests.filter((q) => q.server === 'hub' && q.url.includes('/resolve/')).every((q) => q.url.includes(`/resolve/${MAIN}/`))).toBe(true);

  // A second pull finds every blob and downloads nothing.
  hub.resetLog();
  const again = await pullModel(REPO, opts());
  expect(again.bytesFetched).toBe(0);
  expect(again.files.every((f) => f.cached)).toBe(true);
  expect(hub.requests.map((q) => q.path)).toEqual(['*']);
});

test('revision pinning: @tag resolves to its commit and writes refs/<tag>; @commit writes no ref', async () => {
  const r = await pullModel(`${REPO}@v1.0`, opts());
  expect(r.commit).toBe(V1);
  expect(r.dir).toBe(join(repoRoot(), 'snapshots', V1));
  expect((await readdir(r.dir)).sort()).toEqual((await readdir(internlmDir)).sort());
  expect(await readFile(join(r.dir, 'config.json'), 'utf8')).toBe(await readFile(join(internlmDir, 'config.json'), 'utf8'));
  expect(await readFile(join(repoRoot(), 'refs', 'v1.0'), 'utf8')).toBe(V1);
  expect(hub.requests.filter((q) => q.server === 'hub' && q.url.includes('/resolve/')).every((q) => q.url.includes(`/resolve/${V1}/`))).toBe(true);

  const byCommit = await pullModel(REPO, opts({ revision: MAIN }));
  expect(byCommit.commit).toBe(MAIN);
  expect(await readdir(join(repoRoot(), 'refs'))).toEqual(['v1.0']);

  await expectCode(pullModel(`${REPO}@nope`, opts()), 'ERR_HUB_NOT_FOUND', /Revision "nope" of test-org\/tiny-yi was not found/);
});

test('offline (HF_HUB_OFFLINE=1): resolves from the cache without a single request; a miss is ERR_HUB_OFFLINE', async () => {
  await expectCode(resolveModel(REPO, opts({ offline: true })), 'ERR_HUB_OFFLINE', /not in the cache.*internvl pull test-org\/tiny-yi/);
  const online = await pullModel(REPO, opts());
  hub.resetLog();
  expect(await resolveModel(REPO, opts({ offline: true }))).toBe(online.dir);
  // The same through the environment alone.
  const env = { HF_HUB_OFFLINE: '1', HF_HUB_CACHE: cacheDir, HF_ENDPOINT: hub.url };
  expect(await resolveModel(REPO, { env, token: false })).toBe(online.dir);
  expect(await resolveModel(`${REPO}@${MAIN}`, { env, token: false })).toBe(online.dir);
  expect(hub.requests).toEqual([]);
  // A revision never pulled, and a snapshot missing a shard, are misses.
  await expectCode(resolveModel(`${REPO}@v1.0`, { env, token: false }), 'ERR_HUB_OFFLINE', /test-org\/tiny-yi@v1\.0 is not in the cache.*internvl pull test-org\/tiny-yi@v1\.0/);
  await unlink(join(online.dir, SHARD1));
  await expectCode(resolveModel(REPO, { env, token: false }), 'ERR_HUB_OFFLINE', new RegExp(`lacks ${SHARD1.replace(/\./g, '\\.')}`));
});

test('an unreachable Hub: loading falls back to a complete cached snapshot; pull reports ERR_HUB_NETWORK', async () => {
  const online = await pullModel(REPO, opts());
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const down = opts({ endpoint: `http://127.0.0.1:${port}` });
  expect(await resolveModel(REPO, down)).toBe(online.dir);
  await expectCode(pullModel(REPO, down), 'ERR_HUB_NETWORK', /Giving up after 4 attempts: ECONNREFUSED/);
  await expectCode(resolveModel(`${REPO}@v1.0`, down), 'ERR_HUB_OFFLINE', /could not be reached/);
});

test('Hub errors are typed: unknown repo 404, gated repo 401 without a token and 403 with a wrong one; .bin-only repos explained', async () => {
  await expectCode(pullModel('test-org/missing', opts()), 'ERR_HUB_NOT_FOUND', /Model test-org\/missing was not found on http:\/\/127\.0\.0\.1:\d+ \(if it is private, set HF_TOKEN/);
  await expectCode(pullModel('test-org/gated', opts()), 'ERR_HUB_AUTH', /test-org\/gated is a gated model: accept its conditions at http:\/\/127\.0\.0\.1:\d+\/test-org\/gated .*set HF_TOKEN/);
  await expectCode(pullModel('test-org/gated', opts({ token: 'hf_wrong' })), 'ERR_HUB_AUTH', /gated model.*has no access yet/);
  await expectCode(pullModel('test-org/only-bin', opts()), 'ERR_CHECKPOINT', /has no \.safetensors weights \(only PyTorch pytorch_model\.bin\)/);
  await expectCode(pullModel('not a model id', opts()), 'ERR_INVALID_ARG', /Expected a Hub model id like OpenGVLab\/InternVL2-8B/);
  // A file the listing names but the server no longer has.
  hub.fault({ path: 'config.json', kind: 'status', status: 404 });
  await expectCode(pullModel(REPO, opts()), 'ERR_HUB_NOT_FOUND', /config\.json was not found in test-org\/tiny-yi@main/);
});

test('HF_TOKEN goes to the Hub as a Bearer token, never to the CDN its files redirect to', async () => {
  const r = await pullModel('test-org/gated', opts({ env: { HF_TOKEN: hub.token }, token: undefined }));
  expect((await readdir(r.dir)).sort()).toEqual([...yiFiles.keys()].sort());
  const hubSide = hub.requests.filter((q) => q.server === 'hub');
  const cdnSide = hub.requests.filter((q) => q.server === 'cdn');
  expect(hubSide.length).toBeGreaterThan(0);
  expect(cdnSide.length).toBe(3); // two shards + tokenizer.model
  expect(hubSide.every((q) => q.authorization === `Bearer ${hub.token}`)).toBe(true);
  expect(cdnSide.every((q) => q.authorization === undefined)).toBe(true);
});

test('a connection cut mid-body is resumed with Range and the file verifies', async () => {
  hub.fault({ path: SHARD1, kind: 'cut', bytes: 100_000 });
  const r = await pullModel(REPO, opts());
  const gets = hub.fileRequests(SHARD1).filter((q) => q.server === 'cdn');
  expect(gets.length).toBe(2);
  expect(gets[0].range).toBeUndefined();
  const m = /^bytes=(\d+)-$/.exec(gets[1].range ?? '');
  expect(m).not.toBeNull();
  expect(Number(m?.[1])).toBeGreaterThan(0);
  expect(Number(m?.[1])).toBeLessThanOrEqual(100_000);
  expect(r.files.find((f) => f.path === SHARD1)?.resumed).toBe(true);
  const content = yiFiles.get(SHARD1) as Buffer;
  expect(sha256(await readFile(join(r.dir, SHARD1)))).toBe(sha256(content));
});

test('a pull that fails mid-file leaves only <blob>.incomplete (never passed as complete); the next pull continues it', async () => {
  const content = yiFiles.get(SHARD1) as Buffer;
  const blob = join(repoRoot(), 'blobs', sha256(content));
  hub.fault({ path: SHARD1, kind: 'cut', bytes: 200_000, times: Infinity });
  await expectCode(pullModel(REPO, opts({ retry: { retries: 1, baseDelayMs: 5 } })), 'ERR_HUB_NETWORK', /ended after|ECONNRESET|aborted/);
  const partial = (await stat(`${blob}.incomplete`)).size;
  expect(partial).toBeGreaterThan(0);
  expect(partial).toBeLessThan(content.length);
  await expect(stat(blob)).rejects.toThrow();
  await expectCode(resolveModel(REPO, opts({ offline: true })), 'ERR_HUB_OFFLINE');

  hub.clearFaults();
  hub.resetLog();
  const progress: number[] = [];
  const r = await pullModel(REPO, opts({ onProgress: (p) => progress.push(p.bytesDone - p.bytesAtStart) }));
  const gets = hub.fileRequests(SHARD1).filter((q) => q.server === 'cdn');
  expect(gets.map((q) => q.range)).toEqual([`bytes=${partial}-`]);
  expect(r.files.find((f) => f.path === SHARD1)?.resumed).toBe(true);
  const others = [...yiFiles.entries()].filter(([p]) => p !== SHARD1).reduce((a, [, c]) => a + c.length, 0);
  // The other files completed in the first pull; only the shard's remainder crossed the wire.
  expect(r.bytesFetched).toBe(content.length - partial);
  expect(others).toBeGreaterThan(0);
  expect(progress.at(-1)).toBe(content.length - partial);
  expect((await readFile(blob)).equals(content)).toBe(true);
  await expect(stat(`${blob}.incomplete`)).rejects.toThrow();
});

test('slow responses: an answer within the timeout is waited for; a stall past it is retried (resuming the body)', async () => {
  hub.fault({ path: '*', kind: 'delay', ms: 150 });
  hub.fault({ path: SHARD1, kind: 'stall', bytes: 50_000 });
  const started = performance.now();
  const r = await pullModel(REPO, opts({ timeoutMs: 1000 }));
  expect(hub.requests.filter((q) => q.path === '*').length).toBe(1); // 150 ms < 1 s: no retry
  const gets = hub.fileRequests(SHARD1).filter((q) => q.server === 'cdn');
  expect(gets.length).toBe(2);
  expect(gets[1].range).toMatch(/^bytes=\d+-$/);
  expect(performance.now() - started).toBeGreaterThanOrEqual(1000);
  expect((await readFile(join(r.dir, SHARD1))).equals(yiFiles.get(SHARD1) as Buffer)).toBe(true);

  // The listing itself slower than the timeout: timed out, retried, then fine.
  hub.resetLog();
  hub.fault({ path: '*', kind: 'delay', ms: 2500 });
  await pullModel(REPO, opts({ timeoutMs: 1000 }));
  expect(hub.requests.filter((q) => q.path === '*').length).toBe(2);
});

test('HTTP 503 is retried with backoff; a server that ignores Range gets the whole file again', async () => {
  hub.fault({ path: 'tokenizer.model', kind: 'status', status: 503, times: 2 });
  hub.fault({ path: SHARD1, kind: 'cut', bytes: 100_000 });
  hub.fault({ path: SHARD1, kind: 'ignore-range', times: 1 });
  const r = await pullModel(REPO, opts());
  expect(hub.fileRequests('tokenizer.model').filter((q) => q.server === 'cdn').length).toBe(3);
  expect(hub.fileRequests(SHARD1).filter((q) => q.server === 'cdn').length).toBe(2);
  expect(r.files.find((f) => f.path === SHARD1)?.resumed).toBe(true);
  for (const name of ['tokenizer.model', SHARD1]) {
    expect((await readFile(join(r.dir, name))).equals(yiFiles.get(name) as Buffer)).toBe(true);
  }
});

test('a wrong checksum is ERR_DOWNLOAD_INTEGRITY and leaves nothing under the blob name (sha256 and git blob sha1)', async () => {
  const shard = yiFiles.get(SHARD1) as Buffer;
  hub.fault({ path: SHARD1, kind: 'corrupt', times: Infinity });
  await expectCode(pullModel(REPO, opts()), 'ERR_DOWNLOAD_INTEGRITY', new RegExp(`${SHARD1.replace(/\./g, '\\.')} failed its checksum: expected ${sha256(shard)}`));
  const blobs = await readdir(join(repoRoot(), 'blobs'));
  expect(blobs.filter((b) => b.startsWith(sha256(shard)))).toEqual([]);

  hub.clearFaults();
  await rm(cacheDir, { recursive: true, force: true }); // config.json completed in the first pull
  const config = yiFiles.get('config.json') as Buffer;
  hub.fault({ path: 'config.json', kind: 'corrupt' });
  await expectCode(pullModel(REPO, opts()), 'ERR_DOWNLOAD_INTEGRITY', new RegExp(`config\\.json failed its checksum: expected ${gitBlobSha1(config)}`));
  expect((await readdir(join(repoRoot(), 'blobs'))).filter((b) => b.startsWith(gitBlobSha1(config)))).toEqual([]);
});

test('a resumed download that fails its checksum is retried once from zero (the kept prefix may be the bad part)', async () => {
  hub.fault({ path: SHARD1, kind: 'cut', bytes: 100_000 });
  hub.fault({ path: SHARD1, kind: 'corrupt' }); // the resumed request's bytes are bad
  const r = await pullModel(REPO, opts());
  const gets = hub.fileRequests(SHARD1).filter((q) => q.server === 'cdn');
  expect(gets.length).toBe(3);
  expect(gets[1].range).toMatch(/^bytes=\d+-$/);
  expect(gets[2].range).toBeUndefined();
  expect((await readFile(join(r.dir, SHARD1))).equals(yiFiles.get(SHARD1) as Buffer)).toBe(true);
});

test('disk space is checked before anything downloads', async () => {
  const e = await expectCode(pullModel(REPO, opts({ freeBytes: async () => 1000 })), 'ERR_DISK_SPACE', /needs .* more in .*blobs but only 1000 bytes is free/);
  expect(e.message).toMatch(/HF_HUB_CACHE/);
  expect(hub.requests.filter((q) => q.path !== '*')).toEqual([]);
  // Enough room (what is needed exactly) passes.
  const total = [...yiFiles.values()].reduce((a, c) => a + c.length, 0);
  const r = await pullModel(REPO, opts({ freeBytes: async () => total }));
  expect(r.bytesFetched).toBe(total);
});

test('abort stops every download with ERR_ABORTED and keeps the partial file for a later resume', async () => {
  hub.fault({ path: SHARD1, kind: 'stall', bytes: 60_000 });
  const ac = new AbortController();
  const p = pullModel(REPO, opts({ signal: ac.signal, timeoutMs: 60_000 }));
  setTimeout(() => ac.abort(), 300); // the other files are done by then; the shard hangs at 60 000 bytes
  const started = performance.now();
  await expectCode(p, 'ERR_ABORTED', /aborted \(partial files are kept/);
  expect(performance.now() - started).toBeLessThan(5000); // not the 60 s stall timeout
  const partial = await stat(join(repoRoot(), 'blobs', `${sha256(yiFiles.get(SHARD1) as Buffer)}.incomplete`));
  expect(partial.size).toBe(60_000);
  await expectCode(pullModel(REPO, opts({ signal: AbortSignal.abort() })), 'ERR_ABORTED');
});

test('concurrency bounds the parallel downloads', async () => {
  // Each LFS body waits 150 ms before answering, so downloads allowed to overlap do.
  const lfs = [...yiFiles.keys()].filter(isLfs);
  for (const path of lfs) hub.fault({ path, kind: 'delay', ms: 150 });
  await pullModel(REPO, opts({ concurrency: 1 }));
  expect(hub.maxInFlightCdn).toBe(1);
  await rm(cacheDir, { recursive: true, force: true });
  hub.resetLog();
  for (const path of lfs) hub.fault({ path, kind: 'delay', ms: 150 });
  await pullModel(REPO, opts({ concurrency: 4 }));
  expect(hub.maxInFlightCdn).toBe(lfs.length);
  await expectCode(pullModel(REPO, opts({ concurrency: 0 })), 'ERR_INVALID_ARG', /concurrency/);
});

test('a listing without sizes or ids (some mirrors): each file is HEADed for its ETag and size; the blobs are named the same', async () => {
  hub.bareListing = true;
  const r = await pullModel(REPO, opts());
  const heads = hub.requests.filter((q) => q.method === 'HEAD').map((q) => q.path);
  expect(heads.sort()).toEqual([...yiFiles.keys()].sort());
  expect(hub.requests.filter((q) => q.method === 'HEAD' && q.server === 'cdn')).toEqual([]); // metadata from the Hub's redirect
  for (const [name, content] of yiFiles) {
    expect(await readlink(join(r.dir, name))).toBe(join('..', '..', 'blobs', etagOf(name, content)));
  }
});
