import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built one-file CLI (`npm run build`): starts faster than tsx, so more trials fit. */
export const CLI = fileURLToPath(new URL('../../dist/airlock.mjs', import.meta.url));
/** The enclave side alone, as the enclave runs it: it starts in about half the time of the whole CLI. */
export const LOADER = fileURLToPath(new URL('../../dist/airlock-loader.mjs', import.meta.url));
const ENCLAVE_COMMANDS = new Set(['verify', 'inspect', 'load', 'promote', 'approve']);

export interface Run {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Killed by the per-trial timeout: a hang. */
  hung: boolean;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  /** A hang: SIGKILL after this long and report `hung` (default 120 s). */
  timeoutMs?: number;
  /** The fault: SIGKILL after this long. */
  killAfterMs?: number;
}

/** Run `airlock ARGS` as its own process and collect what it said. */
export function airlock(args: string[], opts: RunOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const program = ENCLAVE_COMMANDS.has(args[0] ?? '') ? LOADER : CLI;
    const child = spawn(process.execPath, [program, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let hung = false;
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const hang = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 120_000);
    const kill = opts.killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(hang);
      clearTimeout(kill);
      resolve({ code: code ?? -1, signal, stdout, stderr, ms: performance.now() - started, hung });
    });
  });
}

/** The `result` line of a `--json` run. */
export function resultOf<T>(run: Run): T {
  const line = run.stdout.trim().split('\n').map((l) => { try { return JSON.parse(l) as { event?: string } } catch { return {}; } }).find((l) => l.event === 'result');
  if (!line) throw new Error(`no result line in:\n${run.stdout}${run.stderr}`);
  return line as T;
}

/** The last lines of what a run printed, for a finding. */
export function said(run: Run): string {
  return `exit ${run.code}${run.signal ? ` (${run.signal})` : ''}${run.hung ? ' (hung)' : ''}: ${(run.stderr || run.stdout).trim().split('\n').slice(-3).join(' | ')}`;
}
