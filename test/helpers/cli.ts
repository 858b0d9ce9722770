import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root, where airlock.ts lives. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Added to the environment (which is otherwise passed through). */
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  /** Told about the child once it runs (to send it signals). */
  onSpawn?: (child: ChildProcess) => void;
  /** Run the one-file build dist/airlock.mjs (scripts/test.sh builds it first): starts in a fraction of tsx's time. */
  built?: boolean;
}

/** Run the real CLI (`node --import tsx airlock.ts ...`, or the build) and collect its output. */
export function airlock(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const entry = options.built ? ['dist/airlock.mjs'] : ['--import', 'tsx', 'airlock.ts'];
    const child = spawn(process.execPath, [...entry, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, signal, stdout, stderr });
    });
    options.onSpawn?.(child);
  });
}
