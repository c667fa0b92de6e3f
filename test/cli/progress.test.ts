/**
 * lib/cli/progress.ts: a bar redrawn in place on a TTY (throttled), plain lines
 * elsewhere, nothing when disabled; colours follow NO_COLOR / FORCE_COLOR.
 */
import { colorEnabled, createProgress, formatBytes, formatDuration, progressStyle } from '../../lib/cli/progress.js';

function sink(isTTY: boolean, columns = 100) {
  const out: string[] = [];
  return { out, stream: { isTTY, columns, write: (s: string) => out.push(s) } };
}

function clock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

test('TTY: one line redrawn in place with percentage, amounts, speed and ETA; throttled to 10 per second', () => {
  const { out, stream } = sink(true);
  const c = clock();
  const p = createProgress({ label: 'weights', total: 4 * 1024 ** 3, unit: 'bytes', stream, env: { NO_COLOR: '1' }, now: c.now });
  c.advance(1000);
  p.update(1024 ** 3, '10/40 tensors');
  expect(out).toHaveLength(1);
  expect(out[0]).toMatch(/^\r\x1b\[2Kweights \[█+░+\]  25% 1\.00 GiB\/4\.00 GiB 1\.00 GiB\/s ETA 3s 10\/40 tensors$/);
  c.advance(50);
  p.update(2 * 1024 ** 3); // within 100 ms of the last draw: not drawn
  expect(out).toHaveLength(1);
  c.advance(60);
  p.update(2 * 1024 ** 3);
  expect(out).toHaveLength(2);
  expect(out[1]).toContain(' 50% ');
  p.done();
  expect(out).toHaveLength(3);
  expect(out[2]).toMatch(/100% 4\.00 GiB\/4\.00 GiB .* 1s\n$/);
  p.update(1); // after done: ignored
  expect(out).toHaveLength(3);
});

test('TTY bar fills in proportion and fits the terminal width', () => {
  const { out, stream } = sink(true, 60);
  const p = createProgress({ label: 'frames', total: 8, stream, env: { NO_COLOR: '1' }, now: () => 0 });
  p.update(2);
  const bar = /\[(█*)(░*)\]/.exec(out[0]);
  expect(bar).not.toBeNull();
  const [, full, empty] = bar as RegExpExecArray;
  expect(full.length / (full.length + empty.length)).toBeCloseTo(0.25, 1);
  expect(out[0].replace(/\r\x1b\[2K/, '').length).toBeLessThanOrEqual(60);
});

test('not a TTY: a line per quarter reached and a summary, no escape codes', () => {
  const { out, stream } = sink(false);
  const c = clock();
  const p = createProgress({ label: 'decoding frames', total: 8, stream, env: { FORCE_COLOR: '1' }, now: c.now });
  for (let i = 1; i <= 8; i++) {
    c.advance(250);
    p.update(i);
  }
  p.done('8 frames');
  expect(out).toEqual([
    'decoding frames: 25% (2 of 8)\n',
    'decoding frames: 50% (4 of 8)\n',
    'decoding frames: 75% (6 of 8)\n',
    'decoding frames: done, 8 (8 frames) in 2.0 s, 4.0/s\n',
  ]);
});

test('a jump past several quarters reports the highest one once', () => {
  const { out, stream } = sink(false);
  const p = createProgress({ label: 'x', total: 100, unit: 'bytes', stream, now: () => 0 });
  p.update(80);
  p.update(90);
  expect(out).toEqual(['x: 75% (80 B of 100 B)\n']);
});

test('enabled: false draws nothing', () => {
  for (const isTTY of [true, false]) {
    const { out, stream } = sink(isTTY);
    const p = createProgress({ label: 'x', total: 10, stream, enabled: false });
    p.update(5);
    p.done();
    expect(out).toEqual([]);
  }
});

test('colour: NO_COLOR wins, FORCE_COLOR forces, else only on a TTY', () => {
  expect(colorEnabled({ isTTY: true, write() {} }, {})).toBe(true);
  expect(colorEnabled({ isTTY: true, write() {} }, { NO_COLOR: '1' })).toBe(false);
  expect(colorEnabled({ isTTY: true, write() {} }, { NO_COLOR: '1', FORCE_COLOR: '1' })).toBe(false);
  expect(colorEnabled({ isTTY: false, write() {} }, { FORCE_COLOR: '1' })).toBe(true);
  expect(colorEnabled({ isTTY: true, write() {} }, { FORCE_COLOR: '0' })).toBe(false);
  expect(colorEnabled({ isTTY: false, write() {} }, {})).toBe(false);
  expect(colorEnabled({ isTTY: true, write() {} }, { TERM: 'dumb' })).toBe(false);
  const { out, stream } = sink(true);
  createProgress({ label: 'x', total: 2, stream, env: {}, now: () => 0 }).update(1);
  expect(out[0]).toContain('\x1b[36m');
  const plain = sink(true);
  createProgress({ label: 'x', total: 2, stream: plain.stream, env: { NO_COLOR: '1' }, now: () => 0 }).update(1);
  expect(plain.out[0]).not.toMatch(/\x1b\[\d+m/);
});

test('formatting helpers', () => {
  expect([formatBytes(0), formatBytes(1023), formatBytes(1536), formatBytes(150 * 1024 ** 2), formatBytes(80 * 1024 ** 3)]).toEqual([
    '0 B',
    '1023 B',
    '1.50 KiB',
    '150 MiB',
    '80.0 GiB',
  ]);
  expect([formatDuration(4.4), formatDuration(125), formatDuration(3720), formatDuration(NaN)]).toEqual(['4s', '2m05s', '1h02m', '?']);
});

test('plain style with quietMs says nothing for a quick operation, everything for a slow one; INTERNVL_PROGRESS forces a style', () => {
  const quick = sink(false);
  const c = clock();
  const p = createProgress({ label: 'x', total: 4, stream: quick.stream, env: {}, now: c.now, quietMs: 1000 });
  for (let i = 1; i <= 4; i++) {
    c.advance(100);
    p.update(i);
  }
  p.done();
  expect(quick.out).toEqual([]);

  const slow = sink(false);
  const c2 = clock();
  const q = createProgress({ label: 'x', total: 4, stream: slow.stream, env: {}, now: c2.now, quietMs: 1000 });
  for (let i = 1; i <= 4; i++) {
    c2.advance(400);
    q.update(i);
  }
  q.done();
  expect(slow.out).toEqual(['x: 75% (3 of 4)\n', 'x: done, 4 in 1.6 s, 2.5/s\n']);

  const forced = sink(false);
  createProgress({ label: 'x', total: 4, stream: forced.stream, env: { INTERNVL_PROGRESS: 'plain' }, now: () => 0, quietMs: 1000 }).done();
  expect(forced.out).toEqual(['x: done, 4 in 0.0 s\n']);
  expect(progressStyle({ isTTY: false, write() {} }, { INTERNVL_PROGRESS: 'tty' })).toBe('tty');
  expect(progressStyle({ isTTY: true, write() {} }, { INTERNVL_PROGRESS: 'none' })).toBe('none');
  expect(progressStyle({ isTTY: true, write() {} }, {})).toBe('tty');
  const none = sink(true);
  createProgress({ label: 'x', total: 4, stream: none.stream, env: { INTERNVL_PROGRESS: 'none' } }).update(2);
  expect(none.out).toEqual([]);
});
