import { UsageError } from '../../shared/cli/errors.ts';
import type { BundleFileScan } from '../../shared/bundle/file.ts';
import type { BundleFileSource } from '../../shared/bundle/source.ts';
import type { HttpTransport } from '../../shared/registry/transport.ts';
import { renderBase } from './base.ts';
import { gitHttp } from './http.ts';
import { commitFiles, remoteDefaultBranch, type Author, type GitRemote } from './repo.ts';

/**
 * load --git: the bundle's manifests as a kustomize base pinned to the
 * enclave registry, plus the signed index, as one commit on the branch
 * ("airlock: load NAME VERSION"); none when nothing changed.
 */
export interface GitOptions {
  url: string;
  branch: string;
  /** Folder in the repository (default: the bundle's name). */
  path?: string;
  username?: string;
  /** NAME of the environment variable holding the password or token. */
  passwordEnv?: string;
  /** "Name <email>" (default: GIT_AUTHOR_NAME / GIT_AUTHOR_EMAIL, else airlock). */
  author?: string;
}

export interface CommitBundleResult {
  url: string;
  branch: string;
  path: string;
  commit?: string;
  createdBranch: boolean;
}

export async function commitBundle(args: {
  git: GitOptions;
  transport: HttpTransport;
  scan: BundleFileScan;
  source: BundleFileSource;
  registry: { host: string; prefix: string };
  /** What lands in airlock/load-report.json: the same for the same bundle and registry, so a reload commits nothing. */
  report: unknown;
  beforePush?: () => Promise<void>;
}): Promise<CommitBundleResult> {
  const { git, scan } = args;
  const path = (git.path ?? scan.index.name).replace(/^\/+|\/+$/g, '');
  if (path === '' || path.split('/').some((s) => s === '..' || s === '.' || s === '')) throw new UsageError(`--git-path ${git.path}: not a relative folder`);
  const remote = openRemote(git, args.transport);
  const manifests = await Promise.all(args.source.entriesUnder('manifests/').map(async (e) => ({ path: e.path, bytes: await args.source.readEntry(e.path) })));
  const files = renderBase({
    index: scan.index,
    indexBytes: scan.indexBytes,
    signature: scan.signature,
    manifests,
    registry: args.registry,
    loadReport: args.report,
  });
  const result = await commitFiles({
    remote,
    branch: git.branch,
    path,
    replace: ['base', 'airlock'],
    files,
    message: `airlock: load ${scan.index.name} ${scan.index.version}\n\nImages pinned to ${args.registry.host}${args.registry.prefix ? '/' + args.registry.prefix : ''} by digest.\n`,
    author: authorOf(git.author),
    startFrom: await remoteDefaultBranch(remote),
    beforePush: args.beforePush,
  });
  return { url: remote.display, branch: git.branch, path, commit: result.commit, createdBranch: result.createdBranch };
}

export function openRemote(git: Pick<GitOptions, 'url' | 'username' | 'passwordEnv'>, transport: HttpTransport): GitRemote {
  let url: URL;
  try {
    url = new URL(git.url);
  } catch {
    throw new UsageError(`--git ${git.url}: not a URL (https://host/path.git)`);
  }
  if (url.protocol === 'ssh:' || /^[\w.-]+@[\w.-]+:/.test(git.url)) {
    throw new UsageError(`--git ${git.url}: git over SSH is not built yet; use the https:// URL of the repository`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`--git ${git.url}: use an https:// URL`);
  if (url.password) {
    throw new UsageError('--git: the URL carries a password; pass it in an environment variable named by --git-password-env instead', {
      hint: 'secrets never go on the command line',
    });
  }
  let credentials: { username: string; password: string } | undefined;
  if (git.username) {
    const password = git.passwordEnv ? process.env[git.passwordEnv] : undefined;
    if (!password) throw new UsageError(`--git-password-env ${git.passwordEnv ?? ''}: the environment variable is not set`);
    credentials = { username: git.username, password };
  }
  url.username = '';
  return { url: url.toString(), http: gitHttp(transport, credentials), display: url.toString() };
}

export function authorOf(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Author {
  if (flag) {
    const m = /^\s*(.+?)\s*<([^<>\s]+@[^<>\s]+)>\s*$/.exec(flag);
    if (!m) throw new UsageError(`--git-author ${flag}: expected "Name <email>"`);
    return { name: m[1]!, email: m[2]! };
  }
  return { name: env.GIT_AUTHOR_NAME || 'airlock', email: env.GIT_AUTHOR_EMAIL || 'airlock@localhost' };
}
