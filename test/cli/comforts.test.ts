/**
 * The CLI's comforts, as a user runs them (compiled dist/, built by `pretest`): load and
 * video progress on stderr (a bar on a TTY, plain lines otherwise, nothing with --json),
 * colours that follow NO_COLOR / FORCE_COLOR, `run --video`, `--verbose` timings on `run`
 * and `chat`, and `info -m` (sizes, parameters, memory) checked against the checkpoint.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ffmpegBinary, ffprobeBinary } from '../../lib/vision/video.js';
import { fixturesDir } from '../helpers/goldens.js';
import { splitSafetensors } from '../helpers/safetensors.js';

const cli = join(fixturesDir, '..', '..', 'dist', 'cli', 'main.js');
const clip = join(fixturesDir, '..', '..', 'examples', 'media', 'clip.mp4');
const tiny = join(fixturesDir, 'models', 'tiny-internlm2');
const ffmpegWorks = [ffmpegBinary(), ffprobeBinary()].every((bin) => spawnSync(bin, ['-version'], { stdio: 'ignore' }).status === 0);

function internvl(args: string[], env: Record<string, string> = {}, input?: string) {
  const base = { ...process.env };
  for (const k of ['INTERNVL_PROGRESS', 'NO_COLOR', 'FORCE_COLOR']) delete base[k];
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...base, ...env }, input, timeout: 60_000 });
}

const runArgs = ['run', '-m', tiny, '--backend', 'cpu', '--greedy', '--max-new-tokens', '4'];
const SGR = /\x1b\[\d+m/;

test('not a TTY: a quick load prints nothing; INTERNVL_PROGRESS=plain prints the summary line', () => {
  const quiet = internvl([...runArgs, 'Hello']);
  expect({ status: quiet.status, stderr: quiet.stderr }).toMatchObject({ status: 0 });
  expect(quiet.stderr).toBe('');
  const plain = internvl([...runArgs, 'Hello'], { INTERNVL_PROGRESS: 'plain' });
  expect({ status: plain.status, stderr: plain.stderr }).toMatchObject({ status: 0 });
  const header = splitSafetensors(readFileSync(join(tiny, 'model.safetensors'))).header;
  expect(plain.stderr).toMatch(new RegExp(`^loading weights \\(cpu\\): done, 588 KiB \\(${Object.keys(header).length} tensors\\) in \\d+\\.\\d s`, 'm'));
  expect(plain.stderr).not.toMatch(SGR);
});

test('--json: no progress whatever the style', () => {
  const r = internvl([...runArgs, '--json', 'Hello'], { INTERNVL_PROGRESS: 'tty', FORCE_COLOR: '1' });
  expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 0 });
  expect(r.stderr).toBe('');
  expect(JSON.parse(r.stdout).tokenIds).toHaveLength(4);
});

test('TTY style: the bar is redrawn in place and ends at 100%; colour unless NO_COLOR', () => {
  const r = internvl([...runArgs, 'Hello'], { INTERNVL_PROGRESS: 'tty', FORCE_COLOR: '1' });
  expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 0 });
  expect(r.stderr).toContain('\r\x1b[2K');
  expect(r.stderr).toMatch(/loading weights \(cpu\).*100%.*588 KiB\/588 KiB.*\n/);
  expect(r.stderr).toMatch(SGR);
  const mono = internvl([...runArgs, 'Hello'], { INTERNVL_PROGRESS: 'tty', NO_COLOR: '1', FORCE_COLOR: '1' });
  expect({ status: mono.status, stderr: mono.stderr }).toMatchObject({ status: 0 });
  expect(mono.stderr).toMatch(/loading weights \(cpu\) \[█+\] 100%/);
  expect(mono.stderr).not.toMatch(SGR);
});

test(`run --video (ffmpeg ${ffmpegWorks ? 'present' : 'absent'}): frames as the card's load_video, with a decoding bar`, () => {
  const r = internvl([...runArgs, '--video', clip, '--json', 'What happens?']);
  if (!ffmpegWorks) {
    expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 1 });
    expect(r.stderr).toMatch(/^internvl: error \[ERR_IMAGE\]: Cannot read video .*ff(mpeg|probe) not found/);
    return;
  }
  expect(r.stderr).toBe('');
  expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 0 });
  const out = JSON.parse(r.stdout) as { imageTiles: number[]; promptTokens: number; timings: { videoMs: number } };
  expect(out.imageTiles).toEqual(Array(8).fill(1));
  expect(out.timings.videoMs).toBeGreaterThan(0);
  const four = JSON.parse(internvl([...runArgs, '--video', clip, '--num-segments', '4', '--json', 'What happens?']).stdout) as { promptTokens: number };
  expect(out.promptTokens - four.promptTokens).toBeGreaterThan(4 * 16); // four more frames of 16 image tokens + labels
  const shown = internvl([...runArgs, '--video', clip, 'What happens?'], { INTERNVL_PROGRESS: 'plain' });
  expect({ status: shown.status, stderr: shown.stderr }).toMatchObject({ status: 0 });
  expect(shown.stderr).toMatch(/^decoding video frames: 25% \(2 of 8\)$/m);
  expect(shown.stderr).toMatch(/^decoding video frames: done, 8 in /m);
});

test('run: --video with --image is refused; --verbose prints the stage timings', () => {
  const both = internvl([...runArgs, '--video', clip, '-i', 'x.png', 'hi']);
  expect({ status: both.status, stderr: both.stderr }).toMatchObject({ status: 2 });
  expect(both.stderr).toMatch(/^internvl: error \[ERR_INVALID_ARG\]: Give either --video or --image, not both/);
  const v = internvl([...runArgs, '--verbose', 'Hello']);
  expect({ status: v.status, stderr: v.stderr }).toMatchObject({ status: 0 });
  expect(v.stderr).toMatch(/^load \d+ ms, preprocess \d+ ms, generate \d+ ms, first token \d+ ms into it, \d+ prompt \+ 4 generated tokens$/m);
});

test('chat --verbose: the load time, then the timings of every turn', () => {
  const r = internvl(['chat', '-m', tiny, '--backend', 'cpu', '--max-new-tokens', '3', '--verbose'], {}, 'Hello\nAgain\n/exit\n');
  expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 0 });
  expect(r.stderr).toMatch(/^load \d+ ms$/m);
  expect(r.stderr.match(/^preprocess \d+ ms, generate \d+ ms, first token \d+ ms into it, \d+ prompt \+ \d+ generated tokens$/gm)).toHaveLength(2);
});

test('--kv-cache-tokens sizes the cache: a prompt larger than it is ERR_OOM', () => {
  const r = internvl([...runArgs, '--kv-cache-tokens', '16', 'Hello, this prompt is longer than sixteen tokens once the template is applied']);
  expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 1 });
  expect(r.stderr).toMatch(/^internvl: error \[ERR_OOM\]: KV cache too small/);
});

describe('info -m', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ivl-info-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('describes the checkpoint: family, sizes, template, tokenizer, tiles, parameters, memory', () => {
    const r = internvl(['info', '-m', tiny]);
    expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 0 });
    const header = splitSafetensors(readFileSync(join(tiny, 'model.safetensors'))).header;
    const params = Object.values(header).reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
    expect(r.stdout).toContain('family     internlm2 (InternLM2ForCausalLM) + InternViT-300M style; template internlm2-chat; tokenizer sentencepiece (809 tokens)');
    expect(r.stdout).toContain('language   3 layers, hidden 64, 4 heads / 2 KV heads × 16, MLP 128, vocab 809, context 32768');
    expect(r.stdout).toContain('tiles      112 px, 1–6 per image + thumbnail, 16 tokens per tile');
    expect(r.stdout).toContain(`parameters ${(params / 1000).toFixed(1)} K`);
    // KV per 1k tokens = 2 · 3 layers · 2 kv heads · 16 · 1000 elements
    expect(r.stdout).toContain(`KV cache   ${((2 * 3 * 2 * 16 * 1000 * 2) / 1024).toFixed(0)} KiB per 1k tokens on CUDA (bf16)`);
    const j = JSON.parse(internvl(['info', '--json', '-m', tiny]).stdout) as { model: { summary: { source: string; total: { params: number; bf16Bytes: number; int8Bytes: number } } } };
    expect(j.model.summary.source).toBe('headers');
    expect(j.model.summary.total.params).toBe(params);
    expect(j.model.summary.total.bf16Bytes).toBe(2 * params);
    // int8: decoder-layer matrices at 1 byte + a 4-byte scale per row; the rest as stored
    const int8 = Object.entries(header).reduce((a, [name, t]) => {
      const n = t.shape.reduce((x, y) => x * y, 1);
      return a + (/^language_model\.model\.layers\./.test(name) && t.shape.length === 2 ? n + 4 * t.shape[0] : 2 * n);
    }, 0);
    expect(j.model.summary.total.int8Bytes).toBe(int8);
  });

  test.each(['tiny-internlm2', 'tiny-yi', 'tiny-qwen2', 'tiny-phi3'])('%s without safetensors: the counts from config.json equal the headers', (family) => {
    const src = join(fixturesDir, 'models', family);
    const copy = join(dir, family);
    cpSync(src, copy, { recursive: true });
    for (const f of ['model.safetensors', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
      try {
        unlinkSync(join(copy, f));
      } catch {
        /* not in this fixture */
      }
    }
    type Summary = { source: string; total: unknown; vision: unknown; language: unknown; projector: unknown };
    const fromHeaders = (JSON.parse(internvl(['info', '--json', '-m', src]).stdout) as { model: { summary: Summary } }).model.summary;
    const fromConfig = (JSON.parse(internvl(['info', '--json', '-m', copy]).stdout) as { model: { summary: Summary } }).model.summary;
    expect([fromHeaders.source, fromConfig.source]).toEqual(['headers', 'config']);
    expect(fromConfig.total).toEqual(fromHeaders.total);
    expect([fromConfig.vision, fromConfig.projector, fromConfig.language]).toEqual([fromHeaders.vision, fromHeaders.projector, fromHeaders.language]);
    expect(internvl(['info', '-m', copy]).stdout).toContain('computed from config.json (no safetensors found)');
  });
});
