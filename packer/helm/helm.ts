import { spawn } from 'node:child_process';
import { constants, createWriteStream } from 'node:fs';
import { access, mkdir, stat, writeFile } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UsageError } from '../../shared/cli/errors.ts';

/**
 * The real Helm binary airlock renders charts with (3.x or 4.x): found from
 * `--helm PATH` or on PATH, checked by `helm version`, and run without a shell
 * in an environment of its own, so the user's Helm repositories, registry
 * logins, plugins and kubeconfig are never consulted and nothing reaches the
 * network (rendering a chart whose dependencies are in its charts/ needs none).
 */
export interface Helm {
  /** Absolute path of the binary. */
  path: string;
  /** "v4.1.4" */
  version: string;
  major: 3 | 4;
}

export const HELM_INSTALL_HINT =
  'install Helm 3 or 4 (https://helm.sh/docs/intro/install/) and put it on PATH, or pass --helm PATH to the helm binary';

/** Find and check helm: `explicit` (from --helm) when given, else `helm` on PATH. */
export async function findHelm(explicit?: string, env: NodeJS.ProcessEnv = process.env): Promise<Helm> {
  let path: string | undefined;
  if (explicit !== undefined) {
    path = resolve(explicit);
    if (!(await isExecutableFile(path))) {
      throw new UsageError(`--helm ${explicit}: not an executable file`, { hint: HELM_INSTALL_HINT });
    }
  } else {
    for (const dir of (env.PATH ?? '').split(delimiter)) {
      if (dir === '') continue;
      const candidate = resolve(dir, 'helm');
      if (await isExecutableFile(candidate)) {
        path = candidate;
        break;
      }
    }
    if (path === undefined) {
      throw new UsageError('helm not found on PATH: charts are rendered by the real Helm', { hint: HELM_INSTALL_HINT });
    }
  }
  const out = await captureHelm(path, ['version', '--template', '{{.Version}}'], isolatedEnv(undefined)).catch((err: Error) => {
    throw new UsageError(`${path}: cannot run it as helm (${err.message})`, { hint: HELM_INSTALL_HINT });
  });
  const version = out.stdout.trim();
  const m = /^v(\d+)\.\d+\.\d+/.exec(version);
  const major = m ? Number(m[1]) : NaN;
  if (out.code !== 0 || (major !== 3 && major !== 4)) {
    const said = out.code !== 0 ? lastLines(out.stderr, 3) : version;
    throw new UsageError(`${path}: not Helm 3 or 4 (helm version says: ${said || 'nothing'})`, { hint: HELM_INSTALL_HINT });
  }
  return { path, version, major: major as 3 | 4 };
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    if (!(await stat(path)).isFile()) return false;
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Helm's environment: PATH only from the caller's, and Helm's homes, HOME and
 * KUBECONFIG inside `home` (a folder under airlock's work folder; when
 * undefined, an unused path that does not exist). HTTP(S)_PROXY point at a
 * closed local port, so anything that would reach the network fails at once
 * instead of leaving the machine.
 */
export function isolatedEnv(home: string | undefined): NodeJS.ProcessEnv {
  const base = home ?? join('/nonexistent', 'airlock-helm-home');
  const closed = 'http://127.0.0.1:9';
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: join(base, 'home'),
    HELM_CACHE_HOME: join(base, 'cache'),
    HELM_CONFIG_HOME: join(base, 'config'),
    HELM_DATA_HOME: join(base, 'data'),
    KUBECONFIG: join(base, 'kubeconfig'),
    HTTP_PROXY: closed,
    HTTPS_PROXY: closed,
    http_proxy: closed,
    https_proxy: closed,
    NO_PROXY: '',
    no_proxy: '',
  };
}

/** Make the folders and the empty kubeconfig isolatedEnv(home) names. */
export async function prepareHelmHome(home: string): Promise<NodeJS.ProcessEnv> {
  const env = isolatedEnv(home);
  for (const dir of [env.HOME!, env.HELM_CACHE_HOME!, env.HELM_CONFIG_HOME!, env.HELM_DATA_HOME!]) await mkdir(dir, { recursive: true });
  await writeFile(env.KUBECONFIG!, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n', { mode: 0o600 });
  return env;
}

export interface HelmRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** At most MAX_STDERR bytes of helm's stderr. */
  stderr: string;
  /** Bytes written to the stdout file. */
  stdoutBytes: number;
  /** Set when stdout passed `maxStdoutBytes` (helm was killed). */
  overflow: boolean;
  timedOut: boolean;
}

const MAX_STDERR = 64 * 1024;

/**
 * Run helm with `args` (an argv array, never a shell), its stdout streamed to
 * `stdoutFile` (never held in memory) and cut off past `maxStdoutBytes`.
 */
export async function runHelmToFile(
  helm: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; stdoutFile: string; maxStdoutBytes: number; timeoutMs: number; cwd?: string },
): Promise<HelmRun> {
  const child = spawn(helm, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    if (stderr.length < MAX_STDERR) stderr += c.slice(0, MAX_STDERR - stderr.length);
  });
  let stdoutBytes = 0;
  let overflow = false;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolveExit({ code, signal }));
  });
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (overflow) return done();
      stdoutBytes += chunk.length;
      if (stdoutBytes > opts.maxStdoutBytes) {
        overflow = true;
        child.kill('SIGKILL');
        return done();
      }
      done(null, chunk);
    },
  });
  try {
    const [, exit] = await Promise.all([pipeline(child.stdout, counter, createWriteStream(opts.stdoutFile)), exited]);
    return { ...exit, stderr, stdoutBytes, overflow, timedOut };
  } finally {
    clearTimeout(timer);
  }
}

/** Run helm and keep its (small) stdout: `helm version` and the like. */
export function captureHelm(helm: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(helm, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      if (stdout.length < MAX_STDERR) stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      if (stderr.length < MAX_STDERR) stderr += c;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
  });
}

/** The last `n` non-empty lines of `text`, joined by "; " (for one-line messages). */
export function lastLines(text: string, n: number): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .slice(-n)
    .join('; ');
}
