/**
 * Progress for long work (pack, load, verify, upload, download).
 *
 * - On a terminal (stream.isTTY, not --json): one status line, redrawn at most
 *   every 100 ms: phase, bytes done/total, rate, ETA, items done/total, and
 *   the bytes that needed no transfer (mounted, already present) apart.
 * - Not a terminal (a pipe, `| tee`, a CI log): the same text as a plain line
 *   at most every 10 s, so a long run shows life.
 * - With --json: {"ts","event":"progress",...} lines at most once a second,
 *   one at every phase change (the state the previous phase ended in) and one
 *   at the end.
 *
 * The byte total is what has to be transferred: a blob that turns out to be
 * in place (mounted from a sibling repository, or already present) leaves the
 * total and is counted apart. An ETA shows only once a phase has run 5 s and
 * done 5% of its bytes; before that a rate says little.
 */
import type { StatusLine } from './log.ts';
import { jsonLine } from './output.ts';
import { PhaseTimes } from './phase-times.ts';
import { backgroundTimeout, type Cancel, type Schedule } from '../schedule.ts';

export interface ProgressOptions {
  json?: boolean;
  /** Where output goes. Default: stdout with json, else stderr. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Override terminal detection (tests). */
  tty?: boolean;
  /**
   * Print the human "done in ..." line at the end (default true). Commands that
   * print their own summary (their result) turn it off.
   */
  summaryLine?: boolean;
  /** Milliseconds clock (tests). Default performance.now-based. */
  now?: () => number;
  /** Wall clock for "ts" in JSON (tests). */
  wallClock?: () => Date;
  /** Schedules the trailing redraw of a throttled update (tests). */
  schedule?: Schedule;
}

export interface Totals {
  bytes?: number;
  items?: number;
}

export const TTY_INTERVAL_MS = 100;
export const JSON_INTERVAL_MS = 1000;
/** One plain line this often at most when stderr is not a terminal. */
export const LOG_INTERVAL_MS = 10_000;
/** No ETA before a phase has run this long... */
export const ETA_MIN_ELAPSED_MS = 5000;
/** ...and done this share of its bytes. */
export const ETA_MIN_FRACTION = 0.05;
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

/** Why a blob needed no transfer: mounted from another repository of the registry, or already there. */
export type InPlace = 'mounted' | 'present';

export interface ProgressSnapshot {
  phase: string;
  /** Bytes transferred in this phase. */
  bytesDone: number;
  /** Bytes to transfer in this phase (bytes found in place leave it). */
  bytesTotal: number;
  /** Bytes that needed no transfer: mounted from a sibling repository. */
  bytesMounted: number;
  /** Bytes that needed no transfer: already in the destination. */
  bytesPresent: number;
  itemsDone: number;
  itemsTotal: number;
  /** Bytes per second over the recent window; 0 when unknown. */
  rate: number;
  /** Seconds left, once the phase has run long enough and done enough for a fair guess. */
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
  private readonly schedule: Schedule;

  private readonly startedAt: number;
  private phaseName = '';
  private phaseStartedAt: number;
  private bytesTotal = 0;
  private bytesDone = 0;
  private itemsTotal = 0;
  private itemsDone = 0;
  private bytesMounted = 0;
  private bytesPresent = 0;
  /** Bytes transferred over every phase (for the summary). */
  private bytesAll = 0;
  private samples: Sample[] = [];
  private lastEmit = Number.NEGATIVE_INFINITY;
  /** The status text last written (JSON): a phase change or the end does not repeat it. */
  private lastEmitted: string | undefined;
  private lineShown = false;
  /** Seconds spent in each phase so far (a phase entered twice adds up). */
  private readonly phaseTimes: PhaseTimes;
  private cancelTrailing: Cancel | undefined;
  private finished = false;

  constructor(options: ProgressOptions = {}) {
    this.json = options.json ?? false;
    this.stream = options.stream ?? (this.json ? process.stdout : process.stderr);
    this.tty = !this.json && (options.tty ?? this.stream.isTTY === true);
    this.summaryLine = options.summaryLine ?? true;
    const start = performance.now();
    this.now = options.now ?? (() => performance.now() - start);
    this.wallClock = options.wallClock ?? (() => new Date());
    this.schedule = options.schedule ?? backgroundTimeout;
    this.startedAt = this.now();
    this.phaseStartedAt = this.startedAt;
    this.phaseTimes = new PhaseTimes(this.now);
  }

  /** Start a phase ("resolve", "download", "push"...); counters restart from the given totals. */
  phase(name: string, totals: Totals = {}): void {
    // JSON: the state the previous phase ended in (its last counts), unless that was just written.
    if (this.json && this.phaseName !== '' && this.lastEmitted !== this.statusText()) this.emit(this.now());
    this.phaseTimes.start(name);
    this.phaseName = name;
    this.phaseStartedAt = this.now();
    this.bytesTotal = totals.bytes ?? 0;
    this.itemsTotal = totals.items ?? 0;
    this.bytesDone = 0;
    this.itemsDone = 0;
    this.bytesMounted = 0;
    this.bytesPresent = 0;
    this.samples = [{ t: this.phaseStartedAt, bytes: 0 }];
    this.update(true);
  }

  /** Seconds spent in each phase, in the order first entered (the current one up to now); for a result's `phases`. */
  phaseSeconds(): Record<string, number> {
    return this.phaseTimes.snapshot();
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

  /**
   * Bytes of the current phase that needed no transfer: they leave the total
   * (which is what has to move) and are shown apart.
   */
  inPlace(bytes: number, how: InPlace): void {
    if (how === 'mounted') this.bytesMounted += bytes;
    else this.bytesPresent += bytes;
    this.bytesTotal = Math.max(this.bytesDone, this.bytesTotal - bytes);
    this.update(false);
  }

  snapshot(): ProgressSnapshot {
    const t = this.now();
    const rate = this.rate(t);
    return {
      phase: this.phaseName,
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      bytesMounted: this.bytesMounted,
      bytesPresent: this.bytesPresent,
      itemsDone: this.itemsDone,
      itemsTotal: this.itemsTotal,
      rate,
      eta: this.eta(t, rate),
      elapsedMs: t - this.startedAt,
    };
  }

  /** Seconds left, or undefined while a guess would be noise (see ETA_MIN_ELAPSED_MS, ETA_MIN_FRACTION). */
  private eta(t: number, rate: number): number | undefined {
    if (this.bytesTotal <= 0 || rate <= 0) return undefined;
    if (t - this.phaseStartedAt < ETA_MIN_ELAPSED_MS || this.bytesDone < this.bytesTotal * ETA_MIN_FRACTION) return undefined;
    return Math.max(0, this.bytesTotal - this.bytesDone) / rate;
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
    if (s.bytesMounted > 0) parts.push(`mounted ${formatBytes(s.bytesMounted)}`);
    if (s.bytesPresent > 0) parts.push(`present ${formatBytes(s.bytesPresent)}`);
    return parts.join('  ');
  }

  /** The work is over: clear the status line and print one summary (a JSON line with --json). */
  done(summaryFields: Record<string, unknown> = {}): void {
    if (this.finished) return;
    this.phaseTimes.finish();
    this.finished = true;
    this.cancelTrailing?.();
    this.cancelTrailing = undefined;
    const elapsedMs = this.now() - this.startedAt;
    if (this.json) {
      // The last state, once; the command's result (or error) line follows.
      if (this.phaseName !== '' && this.lastEmitted !== this.statusText()) this.emit(this.now());
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
    if (this.finished) return;
    const interval = this.json ? JSON_INTERVAL_MS : this.tty ? TTY_INTERVAL_MS : LOG_INTERVAL_MS;
    const t = this.now();
    // A plain log gets its first line after an interval, not at every phase.
    if (!this.json && !this.tty && this.lastEmit === Number.NEGATIVE_INFINITY) this.lastEmit = this.startedAt;
    const since = t - this.lastEmit;
    if ((phaseChange && (this.json || this.tty)) || since >= interval) {
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
    this.lastEmitted = this.statusText();
    this.cancelTrailing?.();
    this.cancelTrailing = undefined;
    if (this.json) {
      const s = this.snapshot();
      const record: Record<string, unknown> = {
        phase: s.phase,
        bytesDone: s.bytesDone,
        bytesTotal: s.bytesTotal,
        bytesMounted: s.bytesMounted,
        bytesPresent: s.bytesPresent,
        itemsDone: s.itemsDone,
        itemsTotal: s.itemsTotal,
        rate: Math.round(s.rate),
        elapsedMs: Math.round(s.elapsedMs),
      };
      if (s.eta !== undefined) record.eta = Math.round(s.eta);
      this.stream.write(jsonLine('progress', record, this.wallClock()));
    } else if (this.tty) {
      this.drawLine();
    } else if (this.phaseName !== '') {
      this.stream.write(`${this.statusText()}\n`);
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
 * Maps copy-engine events to a Progress: transferred bytes on blob-done; a
 * mounted (blob-mount) or already present (blob-skip) blob leaves the total
 * and is counted apart. Items are counted by the caller (one per image or
 * chart). Pass it as copyGraph's onEvent.
 */
export function progressListener(progress: Pick<Progress, 'advance' | 'inPlace'>): (event: ProgressEvent) => void {
  return (event) => {
    const bytes = event.bytes ?? event.descriptor?.size ?? 0;
    if (event.type === 'blob-done') progress.advance(bytes);
    else if (event.type === 'blob-mount') progress.inPlace(bytes, 'mounted');
    else if (event.type === 'blob-skip') progress.inPlace(bytes, 'present');
  };
}
