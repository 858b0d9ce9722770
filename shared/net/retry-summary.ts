/**
 * Retries summed up: instead of a line per retry ("retrying resolve ... in
 * 412 ms" thirty times over), one line per endpoint and cause with a count,
 * every few seconds while retries happen and once at the end:
 *
 *   airlock: warning: http://127.0.0.1:5000: connection reset by the server: retried 7 times
 */
import { backgroundTimeout, type Cancel, type Schedule } from '../schedule.ts';

export const RETRY_SUMMARY_INTERVAL_MS = 5000;

export interface RetrySummaryOptions {
  /** How often counts are written while retries go on. Default 5 s. */
  intervalMs?: number;
  /** Schedules the next summary (tests). */
  schedule?: Schedule;
}

export class RetrySummary {
  /** "endpoint\0cause" -> retries since the last line. */
  private readonly counts = new Map<string, number>();
  private readonly intervalMs: number;
  private readonly schedule: Schedule;
  private cancelTimer: Cancel | undefined;
  private total = 0;

  /** `report` writes one line (a warning of the logger). */
  constructor(
    private readonly report: (line: string) => void,
    options: RetrySummaryOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? RETRY_SUMMARY_INTERVAL_MS;
    this.schedule = options.schedule ?? backgroundTimeout;
  }

  /** One retry of a request to `endpoint` (scheme://host:port or a host) for `cause` (words, see net/errors.ts). */
  record(endpoint: string, cause: string): void {
    const key = `${endpoint}\0${cause}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.total++;
    this.cancelTimer ??= this.schedule(() => {
      this.cancelTimer = undefined;
      this.flush();
    }, this.intervalMs);
  }

  /** Retries recorded so far, in all. */
  get retries(): number {
    return this.total;
  }

  /** Write the counts gathered since the last line, one line per endpoint and cause. */
  flush(): void {
    for (const [key, n] of this.counts) {
      const [endpoint, cause] = key.split('\0') as [string, string];
      this.report(`${endpoint}: ${cause}: retried ${n} time${n === 1 ? '' : 's'}`);
    }
    this.counts.clear();
  }

  /** The end of the run: the last counts, and no timer left behind. */
  close(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.flush();
  }
}
