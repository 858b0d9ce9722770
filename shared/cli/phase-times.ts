/**
 * Wall time per named phase of one command, for its --json result
 * (docs/json-output.md): phases follow each other, starting one ends the one
 * before. Seconds, rounded to milliseconds, in the order the phases ran.
 */
export class PhaseTimes {
  private readonly seconds: Record<string, number> = {};
  private current: { name: string; startedAt: number } | undefined;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Record a phase that ran from `startedAt` (ms on the same clock) until now, e.g. start-up before the command began. */
  record(name: string, startedAt: number): void {
    this.add(name, this.now() - startedAt);
  }

  /** Every phase's seconds so far, the running one up to now (it keeps running). */
  snapshot(): Record<string, number> {
    const seconds = { ...this.seconds };
    if (this.current) seconds[this.current.name] = plus(seconds[this.current.name], this.now() - this.current.startedAt);
    return seconds;
  }

  /** End the running phase, if any, and start `name`. */
  start(name: string): void {
    const t = this.now();
    this.end(t);
    this.current = { name, startedAt: t };
  }

  /** End the running phase; every phase's seconds so far. */
  finish(): Record<string, number> {
    this.end(this.now());
    return { ...this.seconds };
  }

  private end(t: number): void {
    if (this.current) this.add(this.current.name, t - this.current.startedAt);
    this.current = undefined;
  }

  private add(name: string, ms: number): void {
    this.seconds[name] = plus(this.seconds[name], ms);
  }
}

/** `seconds` (none yet: 0) plus `ms`, in seconds rounded to milliseconds. */
function plus(seconds: number | undefined, ms: number): number {
  return Number((((seconds ?? 0) * 1000 + ms) / 1000).toFixed(3));
}
