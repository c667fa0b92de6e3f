/**
 * Lifecycle faults (#11): dispose() with calls in flight at every stage of the public
 * API, and a process that exits, throws or is signalled while a generation runs on the
 * engine thread ends promptly (no hang in the addon's teardown).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { InternVLError } from '../../lib/errors.js';
import { InternVL } from '../../lib/model.js';
import { fixturesDir } from '../helpers/goldens.js';

const here = dirname(fileURLToPath(import.meta.url));
const tiny = join(fixturesDir, 'models', 'tiny-internlm2');

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** ms from the marker line to the process's exit. */
  afterMarker: number;
}

/** Runs test/faults/child.mjs; `onMarker` runs when stdout first shows `marker`. */
function runChild(scenario: string, marker: string, onMarker?: (child: ChildProcess) => void): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, 'child.mjs'), scenario], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let markedAt = 0;
    const killer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child '${scenario}' still running after 60 s; stdout: ${stdout}; stderr: ${stderr}`));
    }, 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (!markedAt && stdout.includes(marker)) {
        markedAt = performance.now();
        onMarker?.(child);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr, afterMarker: markedAt ? performance.now() - markedAt : NaN });
    });
  });
}

describe('a process with a generation in flight', () => {
  test('process.exit() from onToken exits at once with its code', async () => {
    const o = await runChild('exit', 'generating');
    expect(o.stdout).toContain('generating');
    expect(o.code).toBe(0);
    expect(o.afterMarker).toBeLessThan(3000);
  });

  test('an uncaught exception ends the process (exit code 1), not a hang', async () => {
    const o = await runChild('throw', 'generating');
    expect(o.code).toBe(1);
    expect(o.stderr).toContain('uncaught while generating');
    expect(o.afterMarker).toBeLessThan(3000);
  });

  test('SIGTERM ends it', async () => {
    const o = await runChild('wait', 'generating', (c) => c.kill('SIGTERM'));
    expect(o.signal).toBe('SIGTERM');
    expect(o.afterMarker).toBeLessThan(3000);
  });

  test('SIGINT handled by dispose(): the generation settles aborted and the process exits by itself', async () => {
    const o = await runChild('sigint-dispose', 'generating', (c) => c.kill('SIGINT'));
    expect(o.stdout).toContain('disposing');
    expect(o.stdout).toMatch(/settled aborted|rejected ERR_DISPOSED/);
    expect(o.code).toBe(0);
    expect(o.afterMarker).toBeLessThan(3000);
  });

  test('a model left undisposed does not keep the process alive once its work is done', async () => {
    const t0 = performance.now();
    const o = await runChild('natural', 'done');
    expect(o.stdout).toMatch(/done [1-4]/);
    expect(o.code).toBe(0);
    expect(o.afterMarker).toBeLessThan(3000);
    expect(performance.now() - t0).toBeLessThan(30_000);
  });
});

describe('dispose() with calls in flight (public API)', () => {
  test('every call at every stage settles at once: ERR_DISPOSED, or aborted with what it had', async () => {
    const model = await InternVL.load(tiny, { backend: 'cpu' });
    const noise = Buffer.alloc(2000 * 1500 * 3);
    for (let i = 0, x = 7; i < noise.length; i++) noise[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
    const big = await sharp(noise, { raw: { width: 2000, height: 1500, channels: 3 } }).jpeg().toBuffer();
    const wide = readFileSync(join(fixturesDir, 'images', 'wide.jpg'));

    let generating!: () => void;
    const started = new Promise<void>((r) => (generating = r));
    const long = { maxNewTokens: 100_000, doSample: true, seed: 3 };
    const calls: Array<[string, Promise<unknown>]> = [
      ['chat, decoding', model.chat({ question: 'Count.', generation: long, onToken: () => generating() })],
      ['chat, preprocessing', model.chat({ question: 'Describe.', images: [big], generation: { maxNewTokens: 8 } })],
      ['batchChat, decoding', model.batchChat({ questions: ['a', 'b'], images: [wide, null], generation: long })],
      ['stream, decoding', (async () => {
        let text = '';
        for await (const t of model.stream({ question: 'More.', generation: long })) text += t;
        return text;
      })()],
    ];
    await started;
    const t0 = performance.now();
    model.dispose();
    const settled = await Promise.allSettled(calls.map(([, p]) => p));
    expect(performance.now() - t0).toBeLessThan(3000);
    settled.forEach((s, i) => {
      const name = calls[i][0];
      if (s.status === 'rejected') {
        expect([name, s.reason]).toEqual([name, expect.any(InternVLError)]);
        expect([name, (s.reason as InternVLError).code]).toEqual([name, 'ERR_DISPOSED']);
      } else if (name.startsWith('chat')) {
        expect([name, (s.value as { finishReason: string }).finishReason]).toEqual([name, 'aborted']);
      } else if (name.startsWith('batchChat')) {
        const reasons = (s.value as { results: Array<{ finishReason: string }> }).results.map((r) => r.finishReason);
        expect([name, reasons]).toEqual([name, ['aborted', 'aborted']]);
      }
    });
    // the preprocessing call cannot have reached the engine: it is refused, not run
    expect(settled[1].status).toBe('rejected');
    await expect(model.chat({ question: 'x' })).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    model.dispose(); // twice is fine
  });
});
