/**
 * The --jobs curve for npm run bench (scripts/bench.ts calls it on the Harness
 * shape): pack and load at each of BENCH_JOBS_CURVE (default 4,8,16,32), each
 * BENCH_RUNS times, medians printed as a table with each level's time over the
 * default's (--jobs 8), and the smallest level within 5% of the fastest, for
 * pack + load together: the default the numbers support.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry } from '../test/services/registry.ts';

export const DEFAULT_JOBS = 8;

export interface JobsCurveOptions {
  levels: number[];
  runs: number;
  dir: string;
  /** pack's arguments without --jobs and -o. */
  packArgs: string[];
  /** load's arguments after the bundle, without --jobs and --registry. */
  loadArgs: string[];
  airlock: (args: string[]) => Promise<{ seconds: number }>;
  say: (line: string) => void;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchJobsCurve(o: JobsCurveOptions): Promise<void> {
  const times = new Map(o.levels.map((j) => [j, { pack: [] as number[], load: [] as number[] }]));
  const bundle = join(o.dir, 'jobs-curve.tar');
  // Runs interleave the levels, so that a burst of load on the machine does not land on one level only.
  for (let run = 0; run < o.runs; run++) {
    for (const jobs of o.levels) {
      await rm(bundle, { force: true });
      times.get(jobs)!.pack.push((await o.airlock([...o.packArgs, '-o', bundle, '--jobs', String(jobs)])).seconds);
      const enclave = await startRegistry();
      try {
        times.get(jobs)!.load.push((await o.airlock(['load', bundle, ...o.loadArgs, '--registry', enclave.host, '--jobs', String(jobs)])).seconds);
      } finally {
        await enclave.stop();
      }
    }
  }
  await rm(bundle, { force: true });

  const medians = o.levels.map((jobs) => ({ jobs, pack: median(times.get(jobs)!.pack), load: median(times.get(jobs)!.load) }));
  const base = medians.find((m) => m.jobs === DEFAULT_JOBS);
  o.say(`\n--jobs curve (medians of ${o.runs}; x = time over --jobs ${DEFAULT_JOBS}, the default):\n`);
  o.say('| --jobs | pack | load | pack + load |');
  o.say('|---|---|---|---|');
  for (const m of medians) {
    const rel = (s: number, b: number | undefined) => `${s.toFixed(2)} s${b ? ` (${(s / b).toFixed(2)}x)` : ''}`;
    o.say(`| ${m.jobs} | ${rel(m.pack, base?.pack)} | ${rel(m.load, base?.load)} | ${rel(m.pack + m.load, base && base.pack + base.load)} |`);
  }
  const fastest = Math.min(...medians.map((m) => m.pack + m.load));
  const supported = medians.find((m) => m.pack + m.load <= fastest * 1.05)!;
  o.say(`\nsmallest --jobs within 5% of the fastest (pack + load): ${supported.jobs}${supported.jobs === DEFAULT_JOBS ? ' (the default)' : ` (the default is ${DEFAULT_JOBS})`}`);
}
