/**
 * The one-file loader's start-up against Node's own: `node dist/airlock-loader.mjs
 * --version` and `node -e 0`, each run 10 times, medians compared (target: within 3x).
 * Run alone with `npx tsx scripts/startup.ts` (after npm run build), or from the bench.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const RUNS = 10;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Median wall time in ms of running `node ARGS` RUNS times (output discarded; a failure throws). */
function medianRunMs(args: string[]): number {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr.toString().trim()}`);
  }
  return median(times);
}

export interface StartupRatio {
  loaderMs: number;
  nodeMs: number;
  ratio: number;
}

export function startupRatio(loader = fileURLToPath(new URL('../dist/airlock-loader.mjs', import.meta.url))): StartupRatio {
  const nodeMs = medianRunMs(['-e', '0']);
  const loaderMs = medianRunMs([loader, '--version']);
  return { loaderMs, nodeMs, ratio: loaderMs / nodeMs };
}

export function formatStartupRatio({ loaderMs, nodeMs, ratio }: StartupRatio): string {
  return `start-up: node dist/airlock-loader.mjs --version ${loaderMs.toFixed(0)} ms, node -e 0 ${nodeMs.toFixed(0)} ms: ${ratio.toFixed(2)}x (target 3x; medians of ${RUNS})`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(formatStartupRatio(startupRatio()) + '\n');
}
