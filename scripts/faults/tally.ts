/** One row of the campaign's table, and the findings behind its counts. */
export interface Tally {
  scenario: string;
  trials: number;
  /** Trials whose rerun completed with every digest right (or, for hostile input, refused cleanly). */
  completed: number;
  violations: number;
  dataLost: number;
  findings: string[];
  seconds: number;
}

export function tally(scenario: string): Tally {
  return { scenario, trials: 0, completed: 0, violations: 0, dataLost: 0, findings: [], seconds: 0 };
}

/** Record an invariant violation (and, with `lost`, data lost) with what was wrong. */
export function violation(t: Tally, what: string, lost = false): void {
  t.violations++;
  if (lost) t.dataLost++;
  t.findings.push(what);
}

export function table(rows: Tally[]): string {
  const head = ['scenario', 'trials', 'completed on rerun', 'invariant violations', 'data lost', 'seconds'];
  const body = rows.map((r) => [r.scenario, String(r.trials), String(r.completed), String(r.violations), String(r.dataLost), r.seconds.toFixed(0)]);
  const width = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!))).join(' | ')} |`;
  return [line(head), `|${width.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|')}|`, ...body.map(line)].join('\n');
}
