/**
 * Progress for long work (pack, load, upload, download).
 *
 * - On a terminal (stream.isTTY, not --json): one status line, redrawn at most
 *   every 100 ms: phase, bytes done/total, rate, ETA, items done/total.
 * - With --json: {"event":"progress",...} lines at most once a second, plus one
 *   at every phase change and a {"event":"done",...} line at the end.
 * - Otherwise (a pipe or a CI log): nothing but the final summary line.
 */
import type { StatusLine } from './log.ts';

export interface ProgressOptions {
  json?: boolean;
  /** Where output goes. Default: stdout with json, else stderr. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Override terminal detection (tests). */
  tty?: boolean;
  /**
   * Print the human "done in ..." line at the end (default true). Commands that
   * print their own summary turn it off; the JSON "done" event stays.
   */
  summaryLine?: boolean;
  /** Milliseconds clock (tests). Default performance.now-based. */
  now?: () => number;
  /** Wall clock for "ts" in JSON (tests). */
  wallClock?: () => Date;
  /** Schedules the trailing redraw of a throttled update; returns a cancel function (tests). */
  schedule?: (fn: () => void, ms: number) => () => void;
}

export interface Totals {
  bytes?: number;
  items?: number;
}

export const TTY_INTERVAL_MS = 100;
export const JSON_INTERVAL_MS = 1000;
/** The rate is measured over this much recent history. */
const RATE_WINDOW_MS = 5000;
const SAMPLE_EVERY_MS = 100;

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 0 B, 999 B, 1.0 KiB, 12.3 MiB, 1.5 GiB (binary units, one decimal). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '? B';
  if (n < 1024) return `${Math.round(n)} B`;
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  // 1023.96 KiB would print as "1024.0 KiB": move up a unit instead.
  if (v.toFixed(1) === '1024.0' && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${UNITS[i]}`;
}

/** Bytes per second as "45.2 MiB/s". */
export function formatRate(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return '-- B/s';
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** Seconds as 7s, 1m05s, 2h03m; "--" when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(s / 3600);
  if (h >= 100) return `${h}h`;
  return `${h}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

interface Sample {
  t: number;
  bytes: number;
}

export interface ProgressSnapshot {
  phase: string;
  bytesDone: number;
  bytesTotal: number;
  itemsDone: number;
  itemsTotal: number;
  /** Bytes per second over the recent window; 0 when unknown. */
  rate: number;
  /** Seconds left, when a byte total and a rate are known. */
  eta: number | undefined;
  elapsedMs: number;
}

export class Progress implements StatusLine {
  readonly json: boolean;
  readonly tty: boolean;
  private readonly summaryLine: boolean;
  private readonly stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  private readonly now: () => number;
  private readonly wallClock: () => Date;
  private readonly schedule: (fn: () => void, ms: number) => () => void;

  private readonly startedAt: number;
  private phaseName = '';
  private phaseStartedAt: number;
  private bytesTotal = 0;
  private bytesDone = 0;
  private itemsTotal = 0;
  private itemsDone = 0;
  /** Bytes advanced over every phase (for the summary). */
  private bytesAll = 0;
  private samples: Sample[] = [];
  private lastEmit = Number.NEGATIVE_INFINITY;
  private lineShown = false;
  private cancelTrailing: (() => void) | undefined;
  private finished = false;

  constructor(options: ProgressOptions = {}) {
    this.json = options.json ?? false;
    this.stream = options.stream ?? (this.json ? process.stdout : process.stderr);
    this.tty = !this.json && (options.tty ?? this.stream.isTTY === true);
    this.summaryLine = options.summaryLine ?? true;
    const start = performance.now();
    this.now = options.now ?? (() => performance.now() - start);
    this.wallClock = options.wallClock ?? (() => new Date());
    this.schedule =
      options.schedule ??
      ((fn, ms) => {
        const t = setTimeout(fn, ms);
        t.unref();
        return () => clearTimeout(t);
      });
    this.startedAt = this.now();
    this.phaseStartedAt = this.startedAt;
  }

  /** Start a phase ("resolve", "download", "push"...); counters restart from the given totals. */
  phase(name: string, totals: Totals = {}): void {
    this.phaseName = name;
    this.phaseStartedAt = this.now();
    this.bytesTotal = totals.bytes ?? 0;
    this.itemsTotal = totals.items ?? 0;
    this.bytesDone = 0;
    this.itemsDone = 0;
    this.samples = [{ t: this.phaseStartedAt, bytes: 0 }];
    this.update(true);
  }

  /** More work discovered in the current phase. */
  addTotal(bytes: number, items = 0): void {
    this.bytesTotal += bytes;
    this.itemsTotal += items;
    this.update(false);
  }

  /** Work done in the current phase. */
  advance(bytes: number, items = 0): void {
    this.bytesDone += bytes;
    this.bytesAll += bytes;
    this.itemsDone += items;
    const t = this.now();
    const last = this.samples[this.samples.length - 1];
    if (last === undefined || t - last.t >= SAMPLE_EVERY_MS) this.samples.push({ t, bytes: this.bytesDone });
    else last.bytes = this.bytesDone;
    this.update(false);
  }

  snapshot(): ProgressSnapshot {
    const t = this.now();
    const rate = this.rate(t);
    const left = this.bytesTotal - this.bytesDone;
    return {
      phase: this.phaseName,
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      itemsDone: this.itemsDone,
      itemsTotal: this.itemsTotal,
      rate,
      eta: this.bytesTotal > 0 && rate > 0 ? Math.max(0, left) / rate : undefined,
      elapsedMs: t - this.startedAt,
    };
  }

  /** The status line as drawn on a terminal (without control characters). */
  statusText(): string {
    const s = this.snapshot();
    const parts: string[] = [];
    if (s.phase) parts.push(s.phase);
    if (s.bytesTotal > 0 || s.bytesDone > 0) {
      parts.push(s.bytesTotal > 0 ? `${formatBytes(s.bytesDone)} / ${formatBytes(s.bytesTotal)}` : formatBytes(s.bytesDone));
      parts.push(formatRate(s.rate));
      if (s.bytesTotal > 0) parts.push(`ETA ${s.eta === undefined ? '--' : formatDuration(s.eta)}`);
    }
    if (s.itemsTotal > 0 || s.itemsDone > 0) {
      parts.push(s.itemsTotal > 0 ? `${s.itemsDone}/${s.itemsTotal} items` : `${s.itemsDone} items`);
    }
    return parts.join('  ');
  }

  /** The work is over: clear the status line and print one summary (a JSON line with --json). */
  done(summaryFields: Record<string, unknown> = {}): void {
    if (this.finished) return;
    this.finished = true;
    this.cancelTrailing?.();
    this.cancelTrailing = undefined;
    const elapsedMs = this.now() - this.startedAt;
    if (this.json) {
      this.stream.write(
        JSON.stringify({
          event: 'done',
          ts: this.wallClock().toISOString(),
          elapsedMs: Math.round(elapsedMs),
          bytes: this.bytesAll,
          ...summaryFields,
        }) + '\n',
      );
      return;
    }
    this.clear();
    if (!this.summaryLine) return;
    const seconds = elapsedMs / 1000;
    let line = `done in ${formatDuration(seconds)}`;
    if (seconds < 60) line = `done in ${seconds.toFixed(1)}s`;
    if (this.bytesAll > 0) {
      line += `: ${formatBytes(this.bytesAll)}`;
      if (seconds > 0) line += ` at ${formatRate(this.bytesAll / seconds)}`;
    }
    const extra = Object.entries(summaryFields)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
    if (extra.length > 0) line += ` (${extra.join(', ')})`;
    this.stream.write(line + '\n');
  }

  /** StatusLine: remove the status line so that a log line can be written. */
  clear(): void {
    if (this.tty && this.lineShown) {
      this.stream.write('\r\x1b[K');
      this.lineShown = false;
    }
  }

  /** StatusLine: draw the status line again after a log line. */
  redraw(): void {
    if (this.tty && !this.finished && this.phaseName !== '') this.drawLine();
  }

  private rate(t: number): number {
    while (this.samples.length > 2 && t - this.samples[1]!.t >= RATE_WINDOW_MS) this.samples.shift();
    const first = this.samples[0];
    if (first === undefined) return 0;
    const dt = t - first.t;
    if (dt <= 0) return 0;
    return ((this.bytesDone - first.bytes) * 1000) / dt;
  }

  private update(phaseChange: boolean): void {
    if (this.finished || (!this.tty && !this.json)) return;
    const interval = this.json ? JSON_INTERVAL_MS : TTY_INTERVAL_MS;
    const t = this.now();
    const since = t - this.lastEmit;
    if (phaseChange || since >= interval) {
      this.emit(t);
      return;
    }
    // Throttled: make sure the latest state shows once the interval is over.
    if (this.cancelTrailing === undefined) {
      this.cancelTrailing = this.schedule(() => {
        this.cancelTrailing = undefined;
        if (!this.finished) this.emit(this.now());
      }, interval - since);
    }
  }

  private emit(t: number): void {
    this.lastEmit = t;
    this.cancelTrailing?.();
    this.cancelTrailing = undefined;
    if (this.json) {
      const s = this.snapshot();
      const record: Record<string, unknown> = {
        event: 'progress',
        ts: this.wallClock().toISOString(),
        phase: s.phase,
        bytesDone: s.bytesDone,
        bytesTotal: s.bytesTotal,
        itemsDone: s.itemsDone,
        itemsTotal: s.itemsTotal,
        rate: Math.round(s.rate),
      };
      if (s.eta !== undefined) record.eta = Math.round(s.eta);
      this.stream.write(JSON.stringify(record) + '\n');
    } else {
      this.drawLine();
    }
  }

  private drawLine(): void {
    let text = this.statusText();
    const columns = this.stream.columns;
    if (columns !== undefined && columns > 1 && text.length > columns - 1) text = text.slice(0, columns - 1);
    this.stream.write(`\r${text}\x1b[K`);
    this.lineShown = true;
  }
}

/** The part of a copy-engine event (shared/copy.ts CopyEvent) that progress needs. */
export interface ProgressEvent {
  type: string;
  descriptor?: { size: number };
  bytes?: number;
}

/**
 * Maps copy-engine events to a Progress: bytes on blob-done, blob-skip and
 * blob-mount (a skipped or mounted blob counts as done: it is in place),
 * one item on image-done. Pass it as copyGraph's onEvent.
 */
export function progressListener(progress: Pick<Progress, 'advance'>): (event: ProgressEvent) => void {
  return (event) => {
    switch (event.type) {
      case 'blob-done':
      case 'blob-skip':
      case 'blob-mount':
        progress.advance(event.bytes ?? event.descriptor?.size ?? 0);
        break;
      case 'image-done':
        progress.advance(0, 1);
        break;
      default:
        break;
    }
  };
}
