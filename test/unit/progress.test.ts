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
  h.tick(2000);
  h.progress.advance(256 * MiB, 1);
  // 256 MiB in 2 s = 128 MiB/s; 768 MiB left = 6 s.
  assert.equal(h.progress.statusText(), 'download  256.0 MiB / 1.0 GiB  128.0 MiB/s  ETA 6s  1/4 items');
  const s = h.progress.snapshot();
  assert.equal(s.rate, 128 * MiB);
  assert.equal(s.eta, 6);
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

test('not a TTY, not JSON: only the summary line', () => {
  const h = harness({ tty: false });
  h.progress.phase('download', { bytes: 10 * MiB, items: 1 });
  h.tick(500);
  h.progress.advance(10 * MiB, 1);
  h.tick(500);
  h.progress.clear();
  h.progress.redraw();
  assert.equal(h.output(), '');
  assert.equal(h.pending(), 0);
  h.progress.done();
  assert.equal(h.take(), 'done in 1.0s: 10.0 MiB at 10.0 MiB/s\n');
});

test('JSON: one progress line a second at most, plus phase changes and done', () => {
  const h = harness({ json: true, tty: true });
  h.progress.phase('download', { bytes: 4 * MiB, items: 2 });
  for (let i = 0; i < 10; i++) {
    h.tick(100);
    h.progress.advance(MiB / 4);
  }
  h.tick(100);
  h.progress.phase('push', { items: 2 });
  h.progress.advance(0, 2);
  h.tick(1000);
  h.progress.done({ images: 2 });
  const lines = h.output().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    lines.map((l) => [l.event, l.phase]),
    [
      ['progress', 'download'],
      ['progress', 'download'],
      ['progress', 'push'],
      ['progress', 'push'],
      ['done', undefined],
    ],
  );
  assert.deepEqual(lines[0], {
    event: 'progress',
    ts: '2025-01-01T00:00:00.000Z',
    phase: 'download',
    bytesDone: 0,
    bytesTotal: 4 * MiB,
    itemsDone: 0,
    itemsTotal: 2,
    rate: 0,
  });
  // The trailing update fires at the 1 s mark, before that tick's advance.
  assert.equal(lines[1]!.ts, '2025-01-01T00:00:01.000Z');
  assert.equal(lines[1]!.bytesDone, 2.25 * MiB);
  assert.equal(lines[1]!.rate, 2.25 * MiB);
  assert.equal(lines[1]!.eta, 1);
  assert.equal(lines[3]!.itemsDone, 2, 'trailing update after the throttle');
  assert.equal(lines[4]!.images, 2);
  assert.equal(lines[4]!.bytes, 2.5 * MiB);
  assert.equal(lines[4]!.elapsedMs, 2100);
});

test('progressListener maps copy events', () => {
  const calls: [number, number][] = [];
  const listen = progressListener({ advance: (bytes, items = 0) => calls.push([bytes, items]) });
  const descriptor = { mediaType: 'application/octet-stream', digest: 'sha256:00', size: 42 };
  listen({ type: 'blob-start', descriptor });
  listen({ type: 'blob-done', descriptor, bytes: 40 });
  listen({ type: 'blob-skip', descriptor, bytes: 42 });
  listen({ type: 'blob-mount', descriptor });
  listen({ type: 'manifest-done', descriptor });
  listen({ type: 'retry', descriptor });
  listen({ type: 'image-done', descriptor });
  assert.deepEqual(calls, [
    [40, 0],
    [42, 0],
    [42, 0],
    [0, 1],
  ]);
});

test('summaryLine: false leaves the summary to the command; JSON keeps its done event', () => {
  const h = harness({ tty: false, summaryLine: false });
  h.progress.phase('push', { bytes: MiB });
  h.progress.advance(MiB);
  h.progress.done();
  assert.equal(h.take(), '');
});
