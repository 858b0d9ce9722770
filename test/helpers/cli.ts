import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, where airlock.ts lives. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The CLI the tests run: the one-file build, as users get it (`npm run build`;
 * scripts/test.sh builds it before any integration test). It starts in a
 * fraction of what `node --import tsx airlock.ts` takes, and the suite starts
 * it hundreds of times.
 */
export const CLI = join(REPO_ROOT, 'dist', 'airlock.mjs');

/** The sources the build is made of. */
const SOURCES = ['airlock.ts', 'shared', 'packer', 'loader'];

/** The newest source file (path and mtime), to tell a stale build. */
function newestSource(): { path: string; mtimeMs: number } {
  let newest = { path: '', mtimeMs: 0 };
  const visit = (path: string) => {
    const stat = statSync(path);
    if (stat.isDirectory()) for (const name of readdirSync(path)) visit(join(path, name));
    else if (path.endsWith('.ts') && stat.mtimeMs > newest.mtimeMs) newest = { path, mtimeMs: stat.mtimeMs };
  };
  for (const s of SOURCES) visit(join(REPO_ROOT, s));
  return newest;
}

let checked = false;

/** A missing or stale build fails the test with what to do, instead of testing old code. */
function assertBuilt(): void {
  if (checked) return;
  const built = statSync(CLI, { throwIfNoEntry: false });
  const newest = newestSource();
  if (built === undefined) throw new Error(`${relative(REPO_ROOT, CLI)} is missing: run npm run build (scripts/test.sh builds it)`);
  if (built.mtimeMs < newest.mtimeMs) {
    throw new Error(`${relative(REPO_ROOT, CLI)} is older than ${relative(REPO_ROOT, newest.path)}: run npm run build (scripts/test.sh builds it)`);
  }
  checked = true;
}

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
}

/** Run the real CLI (`node dist/airlock.mjs ...`, see CLI) and collect its output. */
export function airlock(args: string[], options: CliOptions = {}): Promise<CliResult> {
  assertBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
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
