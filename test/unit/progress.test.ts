import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { Progress, formatBytes, formatDuration, formatRate, progressListener } from '../../shared/cli/progress.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** A fake output stream, a fake clock and a fake scheduler. */
function harness(opts: { json?: boolean; tty?: boolean; columns?: number; summaryLine?: boolean } = {}) {
  const stream = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number };
  stream.columns = opts.columns;
  let out = '';
  stream.on('data', (c: Buffer) => (out += c.toString()));
  let t = 0;
  const timers: { at: number; fn: () => void; cancelled: boolean }[] = [];
  const progress = new Progress({
    json: opts.json,
    tty: opts.tty,
    summaryLine: opts.summaryLine,
    stream,
    now: () => t,
    wallClock: () => new Date(Date.UTC(2025, 0, 1) + t),
    schedule: (fn, ms) => {
      const timer = { at: t + ms, fn, cancelled: false };
      timers.push(timer);
      return () => {
        timer.cancelled = true;
      };
    },
  });
  return {
    progress,
    /** Advance the clock, firing due timers. */
    tick(ms: number) {
      t += ms;
      for (const timer of timers.splice(0)) {
        if (timer.cancelled) continue;
        if (timer.at <= t) timer.fn();
        else timers.push(timer);
      }
    },
    output: () => out,
    take() {
      const o = out;
      out = '';
      return o;
    },
    pending: () => timers.filter((x) => !x.cancelled).length,
  };
}

test('formatBytes: binary units, one decimal', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(999), '999 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1024), '1.0 KiB');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(12.34 * MiB), '12.3 MiB');
  assert.equal(formatBytes(1.5 * GiB), '1.5 GiB');
  assert.equal(formatBytes(MiB - 1), '1.0 MiB', 'no "1024.0 KiB"');
  assert.equal(formatBytes(3 * 1024 * GiB), '3.0 TiB');
  assert.equal(formatBytes(-1), '? B');
  assert.equal(formatBytes(Number.NaN), '? B');
});

test('formatRate and formatDuration', () => {
  assert.equal(formatRate(45.25 * MiB), '45.3 MiB/s');
  assert.equal(formatRate(0), '-- B/s');
  assert.equal(formatRate(Number.POSITIVE_INFINITY), '-- B/s');
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(7.4), '7s');
  assert.equal(formatDuration(59.6), '1m00s');
  assert.equal(formatDuration(65), '1m05s');
  assert.equal(formatDuration(3599), '59m59s');
  assert.equal(formatDuration(2 * 3600 + 3 * 60 + 20), '2h03m');
  assert.equal(formatDuration(500 * 3600), '500h');
  assert.equal(formatDuration(Number.NaN), '--');
  assert.equal(formatDuration(-5), '--');
});

test('status line: bytes, rate, ETA, items', () => {
  const h = harness({ tty: true });
  h.progress.phase('download', { bytes: 1 * GiB, items: 4 });
  h.tick(5000);
  h.progress.advance(256 * MiB, 1);
  // 256 MiB in 5 s = 51.2 MiB/s; 768 MiB left = 15 s.
  assert.equal(h.progress.statusText(), 'download  256.0 MiB / 1.0 GiB  51.2 MiB/s  ETA 15s  1/4 items');
  const s = h.progress.snapshot();
  assert.equal(s.rate, 51.2 * MiB);
  assert.equal(s.eta, 15);
});

test('no ETA before 5 s of the phase and 5% of its bytes', () => {
  const h = harness({ tty: true });
  h.progress.phase('push', { bytes: 100 * GiB });
  h.tick(2000);
  h.progress.advance(60 * GiB);
  assert.equal(h.progress.snapshot().eta, undefined, '60% done, but after 2 s only');
  assert.match(h.progress.statusText(), /ETA --/);

  h.progress.phase('push', { bytes: 100 * GiB });
  h.tick(8000);
  h.progress.advance(GiB);
  assert.equal(h.progress.snapshot().eta, undefined, '8 s, but 1% done: no "ETA 350h"');
  h.tick(1000);
  h.progress.advance(4 * GiB);
  assert.ok(h.progress.snapshot().eta !== undefined, '9 s and 5% done: an ETA');
  assert.match(h.progress.statusText(), /ETA \d+m\d\ds/);
});

test('bytes in place (mounted, present) leave the total and show apart', () => {
  const h = harness({ tty: true });
  h.progress.phase('push', { bytes: 500 * MiB, items: 3 });
  const listen = progressListener(h.progress);
  const descriptor = { mediaType: 'application/octet-stream', digest: 'sha256:00', size: 100 * MiB };
  listen({ type: 'blob-done', descriptor, bytes: 100 * MiB });
  listen({ type: 'blob-mount', descriptor, bytes: 100 * MiB });
  listen({ type: 'blob-skip', descriptor, bytes: 50 * MiB });
  const s = h.progress.snapshot();
  assert.deepEqual([s.bytesDone, s.bytesTotal, s.bytesMounted, s.bytesPresent], [100 * MiB, 350 * MiB, 100 * MiB, 50 * MiB]);
  assert.equal(h.progress.statusText(), 'push  100.0 MiB / 350.0 MiB  -- B/s  ETA --  0/3 items  mounted 100.0 MiB  present 50.0 MiB');
});

test('status line without totals, and before any byte moved', () => {
  const h = harness({ tty: true });
  h.progress.phase('resolve');
  assert.equal(h.progress.statusText(), 'resolve');
  h.progress.advance(0, 3);
  assert.equal(h.progress.statusText(), 'resolve  3 items');
  h.progress.phase('push', { bytes: 10 * MiB });
  assert.equal(h.progress.statusText(), 'push  0 B / 10.0 MiB  -- B/s  ETA --');
});

test('the rate follows the recent window, not the whole phase', () => {
  const h = harness({ tty: true });
  h.progress.phase('download', { bytes: 100 * GiB });
  // 60 s at 10 MiB/s, then 10 s at 100 MiB/s.
  for (let i = 0; i < 60; i++) {
    h.tick(1000);
    h.progress.advance(10 * MiB);
  }
  for (let i = 0; i < 10; i++) {
    h.tick(1000);
    h.progress.advance(100 * MiB);
  }
  const rate = h.progress.snapshot().rate;
  assert.ok(rate > 90 * MiB && rate <= 100 * MiB, `rate ${formatRate(rate)}`);
});

test('TTY: redraws at most every 100 ms, the latest state shows after the interval', () => {
  const h = harness({ tty: true, columns: 200 });
  h.progress.phase('download', { bytes: 100 * MiB, items: 10 });
  let out = h.take();
  assert.equal(out, '\rdownload  0 B / 100.0 MiB  -- B/s  ETA --  0/10 items\x1b[K');

  h.tick(10);
  h.progress.advance(MiB, 1);
  h.tick(10);
  h.progress.advance(MiB, 1);
  assert.equal(h.take(), '', 'throttled');
  assert.equal(h.pending(), 1, 'one trailing redraw scheduled');
  h.tick(80);
  out = h.take();
  assert.equal((out.match(/\r/g) ?? []).length, 1);
  assert.match(out, /2\.0 MiB \/ 100\.0 MiB .* 2\/10 items/);

  h.tick(150);
  h.progress.advance(MiB);
  assert.match(h.take(), /3\.0 MiB/, 'past the interval: drawn at once');
  assert.equal(h.pending(), 0);
});

test('TTY: the line is cut to the terminal width; done clears it and prints a summary', () => {
  const h = harness({ tty: true, columns: 20 });
  h.progress.phase('a-very-long-phase-name', { bytes: GiB });
  const out = h.take();
  assert.equal(out, '\r' + 'a-very-long-phase-name  0 B'.slice(0, 19) + '\x1b[K');
  h.tick(2000);
  h.progress.advance(GiB);
  h.tick(1000);
  h.take();
  h.progress.done({ images: 3 });
  assert.equal(h.take(), '\r\x1b[Kdone in 3.0s: 1.0 GiB at 341.3 MiB/s (images=3)\n');
  h.progress.advance(1);
  h.tick(1000);
  assert.equal(h.take(), '', 'nothing after done');
});

test('TTY: clear and redraw around a log line', () => {
  const h = harness({ tty: true });
  h.progress.phase('push', { items: 2 });
  h.take();
  h.progress.clear();
  assert.equal(h.take(), '\r\x1b[K');
  h.progress.clear();
  assert.equal(h.take(), '', 'nothing to clear twice');
  h.progress.redraw();
  assert.equal(h.take(), '\rpush  0/2 items\x1b[K');
});

test('not a TTY, not JSON: one plain line every 10 s at most, then the summary', () => {
  const h = harness({ tty: false });
  h.progress.phase('download', { bytes: 100 * MiB, items: 4 });
  h.progress.advance(MiB);
  assert.equal(h.output(), '', 'no line at the start');
  for (let i = 0; i < 25; i++) {
    h.tick(1000);
    h.progress.advance(MiB, i % 10 === 9 ? 1 : 0);
  }
  h.progress.clear();
  h.progress.redraw();
  const lines = h.take().split('\n').filter(Boolean);
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.match(lines[0]!, /^download {2}10\.0 MiB \/ 100\.0 MiB {2}\S+ \S+\/s {2}ETA \d+m\d\ds {2}0\/4 items$/);
  assert.match(lines[1]!, /^download {2}20\.0 MiB \/ 100\.0 MiB .* 1\/4 items$/);
  assert.ok(!lines.join('').includes('\r') && !lines.join('').includes('\x1b'), 'no terminal control characters');
  h.tick(2000);
  h.progress.done();
  assert.equal(h.take(), 'done in 27.0s: 26.0 MiB at 986.1 KiB/s\n');
});

test('JSON: one progress line a second at most, a line at each phase change and at the end; no "done" event', () => {
  const h = harness({ json: true, tty: true });
  h.progress.phase('download', { bytes: 4 * MiB, items: 2 });
  for (let i = 0; i < 10; i++) {
    h.tick(100);
    h.progress.advance(MiB / 4);
  }
  h.tick(100);
  h.progress.advance(0, 2);
  h.progress.phase('push', { items: 2 });
  h.progress.advance(0, 2);
  h.tick(1000);
  h.progress.done({ images: 2 });
  const lines = h.output().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    lines.map((l) => [l.event, l.phase, l.itemsDone, l.itemsTotal]),
    [
      ['progress', 'download', 0, 2],
      ['progress', 'download', 0, 2],
      ['progress', 'download', 2, 2],
      ['progress', 'push', 0, 2],
      ['progress', 'push', 2, 2],
    ],
  );
  assert.deepEqual(lines[0], {
    ts: '2025-01-01T00:00:00.000Z',
    event: 'progress',
    phase: 'download',
    bytesDone: 0,
    bytesTotal: 4 * MiB,
    bytesMounted: 0,
    bytesPresent: 0,
    itemsDone: 0,
    itemsTotal: 2,
    rate: 0,
    elapsedMs: 0,
  });
  // The trailing update fires at the 1 s mark, before that tick's advance.
  assert.equal(lines[1]!.ts, '2025-01-01T00:00:01.000Z');
  assert.equal(lines[1]!.bytesDone, 2.25 * MiB);
  assert.equal(lines[1]!.rate, 2.25 * MiB);
  assert.equal(lines[1]!.eta, undefined, 'no ETA after 1 s');
  assert.ok(lines.every((l) => Object.keys(l)[0] === 'ts' && Object.keys(l)[1] === 'event'));
});

test('progressListener maps copy events: transferred bytes advance, mounted and present ones are in place', () => {
  const calls: unknown[] = [];
  const listen = progressListener({ advance: (bytes, items = 0) => calls.push(['advance', bytes, items]), inPlace: (bytes, how) => calls.push([how, bytes]) });
  const descriptor = { mediaType: 'application/octet-stream', digest: 'sha256:00', size: 42 };
  listen({ type: 'blob-start', descriptor });
  listen({ type: 'blob-done', descriptor, bytes: 40 });
  listen({ type: 'blob-skip', descriptor, bytes: 42 });
  listen({ type: 'blob-mount', descriptor });
  listen({ type: 'manifest-done', descriptor });
  listen({ type: 'retry', descriptor });
  assert.deepEqual(calls, [
    ['advance', 40, 0],
    ['present', 42],
    ['mounted', 42],
  ]);
});

test('summaryLine: false leaves the summary to the command', () => {
  const h = harness({ tty: false, summaryLine: false });
  h.progress.phase('push', { bytes: MiB });
  h.progress.advance(MiB);
  h.progress.done();
  assert.equal(h.take(), '');
});
