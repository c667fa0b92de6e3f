/**
 * The pure parts of Hub resolution: model ids, the environment (HF_HOME, HF_HUB_CACHE,
 * HF_TOKEN, HF_ENDPOINT, HF_HUB_OFFLINE) and which repo files the runtime needs.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { InternVLError } from '../../lib/errors.js';
import { normalizeEtag } from '../../lib/hub/api.js';
import { RepoCache, safeRepoPath } from '../../lib/hub/cache.js';
import { selectFiles } from '../../lib/hub/files.js';
import { hubError } from '../../lib/hub/http.js';
import { isHubModelRef, parseModelRef, repoFolderName } from '../../lib/hub/repoId.js';
import { hubSettings } from '../../lib/hub/settings.js';
import { fixturesDir } from '../helpers/goldens.js';

test('model ids: org/name with an optional @revision; paths and malformed names are not ids', () => {
  expect(parseModelRef('OpenGVLab/InternVL2-8B')).toEqual({ repo: 'OpenGVLab/InternVL2-8B', revision: 'main' });
  expect(parseModelRef('OpenGVLab/InternVL2-8B@v1.0')).toEqual({ repo: 'OpenGVLab/InternVL2-8B', revision: 'v1.0' });
  expect(parseModelRef('org/m_1.5@refs/pr/3')).toEqual({ repo: 'org/m_1.5', revision: 'refs/pr/3' });
  const sha = 'a'.repeat(40);
  expect(parseModelRef(`org/name@${sha}`)?.revision).toBe(sha);
  for (const bad of ['InternVL2-8B', './org/name', '../org/name', '/models/InternVL2-8B', 'a/b/c', 'org/name@', 'org/na--me', 'org/na..me', '-org/name', 'org/name.', 'org/name@a b', 'org/name@../x', 'C:\\models\\x', '']) {
    expect([bad, parseModelRef(bad)]).toEqual([bad, undefined]);
  }
  expect(repoFolderName('OpenGVLab/InternVL2-8B')).toBe('models--OpenGVLab--InternVL2-8B');
});

test('an existing local path always wins over a Hub id of the same spelling', () => {
  const cwd = process.cwd();
  try {
    process.chdir(join(fixturesDir, '..'));
    expect(isHubModelRef('fixtures/models')).toBe(false); // exists here: a directory, not a repo
    expect(isHubModelRef('fixtures/no-such-dir')).toBe(true);
  } finally {
    process.chdir(cwd);
  }
  expect(isHubModelRef('OpenGVLab/InternVL2-1B')).toBe(true);
  expect(isHubModelRef('/nonexistent/model')).toBe(false);
});

test('settings follow huggingface_hub: HF_HUB_CACHE > HF_HOME/hub > XDG_CACHE_HOME > ~/.cache; HF_TOKEN > token file', async () => {
  const home = await mkdtemp(join(tmpdir(), 'internvl-hfhome-'));
  try {
    expect(hubSettings({ env: {} })).toMatchObject({
      endpoint: 'https://huggingface.co',
      cacheDir: join(homedir(), '.cache', 'huggingface', 'hub'),
      offline: false,
      timeoutMs: 30_000,
    });
    expect(hubSettings({ env: { XDG_CACHE_HOME: '/xdg' } }).cacheDir).toBe(resolve('/xdg/huggingface/hub'));
    expect(hubSettings({ env: { HF_HOME: home, XDG_CACHE_HOME: '/xdg' } }).cacheDir).toBe(join(home, 'hub'));
    expect(hubSettings({ env: { HF_HOME: home, HUGGINGFACE_HUB_CACHE: '/legacy' } }).cacheDir).toBe(resolve('/legacy'));
    expect(hubSettings({ env: { HF_HOME: home, HF_HUB_CACHE: '/c', HUGGINGFACE_HUB_CACHE: '/legacy' } }).cacheDir).toBe(resolve('/c'));
    expect(hubSettings({ env: { HF_HUB_CACHE: '/c' }, cacheDir: '/opt' }).cacheDir).toBe(resolve('/opt'));
    // Token: the saved login file, overridden by HF_TOKEN, overridden by the option; false sends none.
    expect(hubSettings({ env: { HF_HOME: home } }).token).toBeUndefined();
    await writeFile(join(home, 'token'), 'hf_saved\n');
    expect(hubSettings({ env: { HF_HOME: home } }).token).toBe('hf_saved');
    expect(hubSettings({ env: { HF_HOME: home, HF_TOKEN: 'hf_env' } }).token).toBe('hf_env');
    expect(hubSettings({ env: { HF_HOME: home, HF_TOKEN: 'hf_env' }, token: 'hf_opt' }).token).toBe('hf_opt');
    expect(hubSettings({ env: { HF_HOME: home, HF_TOKEN: 'hf_env' }, token: false }).token).toBeUndefined();
    await writeFile(join(home, 'other-token'), 'hf_other');
    expect(hubSettings({ env: { HF_HOME: home, HF_TOKEN_PATH: join(home, 'other-token') } }).token).toBe('hf_other');
    // Offline flag spellings, endpoint, timeout.
    for (const v of ['1', 'true', 'YES', 'on']) expect(hubSettings({ env: { HF_HUB_OFFLINE: v } }).offline).toBe(true);
    for (const v of ['0', 'false', '']) expect(hubSettings({ env: { HF_HUB_OFFLINE: v } }).offline).toBe(false);
    expect(hubSettings({ env: { HF_ENDPOINT: 'https://hf-mirror.example/' } }).endpoint).toBe('https://hf-mirror.example');
    expect(hubSettings({ env: { HF_HUB_DOWNLOAD_TIMEOUT: '5' } }).timeoutMs).toBe(5000);
    expect(() => hubSettings({ env: { HF_ENDPOINT: 'ftp://x' } })).toThrow(/Expected an http\(s\) URL for the Hub endpoint \(HF_ENDPOINT\)/);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});

test('file selection: config, tokenizer files, safetensors + index; never Python code, .bin, docs or subfolders', () => {
  const listing = [
    '.gitattributes',
    'README.md',
    'config.json',
    'configuration_internvl_chat.py',
    'modeling_internvl_chat.py',
    'conversation.py',
    'generation_config.json',
    'model-00001-of-00002.safetensors',
    'model-00002-of-00002.safetensors',
    'model.safetensors.index.json',
    'pytorch_model.bin',
    'preprocessor_config.json',
    'special_tokens_map.json',
    'tokenizer.model',
    'tokenizer_config.json',
    'added_tokens.json',
    'examples/image1.jpg',
    'runs/model.safetensors',
  ];
  expect(selectFiles('o/m', listing, 'model')).toEqual([
    'added_tokens.json',
    'config.json',
    'generation_config.json',
    'model-00001-of-00002.safetensors',
    'model-00002-of-00002.safetensors',
    'model.safetensors.index.json',
    'special_tokens_map.json',
    'tokenizer.model',
    'tokenizer_config.json',
  ]);
  expect(selectFiles('o/m', ['config.json', 'model.safetensors', 'vocab.json', 'merges.txt', 'tokenizer.json'], 'tokenizer')).toEqual([
    'config.json',
    'merges.txt',
    'tokenizer.json',
    'vocab.json',
  ]);
  expect(() => selectFiles('o/m', ['README.md', 'model.safetensors'], 'model')).toThrow(/o\/m has no config\.json/);
  expect(() => selectFiles('o/m', ['config.json', 'pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin'], 'model')).toThrow(
    /no \.safetensors weights \(only PyTorch pytorch_model-00001-of-00002\.bin, \.\.\.\)/,
  );
});

test('cache paths: refs nest like git refs; unsafe file paths and blob names from the Hub are refused', () => {
  const cache = new RepoCache('/c', 'org/name');
  expect(cache.root).toBe(join('/c', 'models--org--name'));
  expect(cache.refPath('refs/pr/1')).toBe(join('/c', 'models--org--name', 'refs', 'refs', 'pr', '1'));
  expect(cache.incompletePath('ab12')).toBe(join('/c', 'models--org--name', 'blobs', 'ab12.incomplete'));
  for (const bad of ['../x', 'a/../../x', '/etc/passwd', 'a//b', '', 'a\\b']) expect(() => safeRepoPath(bad)).toThrow(InternVLError);
  expect(() => cache.blobPath('../../x')).toThrow(/unusable file id/);
  expect(normalizeEtag('W/"abc"')).toBe('abc');
  expect(normalizeEtag('"abc"')).toBe('abc');
});

test('Hub responses map to typed errors; 408/429/5xx are retryable with Retry-After', () => {
  const ctx = { endpoint: 'https://hub', repo: 'o/m', revision: 'main', authenticated: false };
  const err = (status: number, headers: Record<string, string> = {}, c: Partial<typeof ctx> & { path?: string } = {}) =>
    hubError({ status, headers, url: 'https://hub/x' }, { ...ctx, ...c });
  expect(err(401, { 'x-error-code': 'GatedRepo' })).toMatchObject({ code: 'ERR_HUB_AUTH', message: expect.stringMatching(/gated.*https:\/\/hub\/o\/m.*HF_TOKEN/) });
  expect(err(401)).toMatchObject({ code: 'ERR_HUB_AUTH', message: expect.stringMatching(/HTTP 401.*set HF_TOKEN/) });
  expect(err(403, {}, { authenticated: true })).toMatchObject({ code: 'ERR_HUB_AUTH', message: expect.stringMatching(/token in HF_TOKEN is invalid/) });
  expect(err(401, { 'x-error-code': 'RepoNotFound' })).toMatchObject({ code: 'ERR_HUB_NOT_FOUND', message: expect.stringMatching(/if it is private, set HF_TOKEN/) });
  expect(err(404, {}, { path: 'config.json' })).toMatchObject({ code: 'ERR_HUB_NOT_FOUND', message: expect.stringMatching(/config\.json was not found in o\/m@main/) });
  expect(err(400)).toMatchObject({ code: 'ERR_HUB_NETWORK' });
  for (const s of [408, 429, 500, 502, 503]) expect(err(s).name).toBe('RetryableError');
  expect(err(429, { 'retry-after': '7' })).toMatchObject({ retryAfterMs: 7000 });
});
