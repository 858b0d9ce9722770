import { execFile } from 'node:child_process';

export interface ExecResult { stdout: string; stderr: string; code: number }

/**
 * Run a command (no shell) and collect its output. Rejects when it exits non-zero,
 * unless `allowFail` is set. The environment is passed through, plus `env`.
 */
export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; input?: string | Buffer; allowFail?: boolean; timeoutMs?: number; encoding?: 'utf8'; env?: Record<string, string | undefined> } = {},
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { cwd: opts.cwd, maxBuffer: 64 * 1024 * 1024, timeout: opts.timeoutMs ?? 60_000, encoding: 'utf8', env: opts.env ? { ...process.env, ...opts.env } : process.env },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        if (err && !opts.allowFail) {
          reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${stderr || err.message}`));
          return;
        }
        resolve({ stdout, stderr, code });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Like run(), but returns stdout as raw bytes (e.g. `skopeo inspect --raw`, to hash it exactly). */
export function runBytes(cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { maxBuffer: 64 * 1024 * 1024, timeout: opts.timeoutMs ?? 60_000, encoding: 'buffer' },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.toString() || err.message}`));
        else resolve(stdout);
      },
    );
  });
}
