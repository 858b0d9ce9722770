import { UsageError } from '../../shared/cli/errors.ts';
import type { BundleFileScan } from '../../shared/bundle/file.ts';
import type { BundleFileSource } from '../../shared/bundle/source.ts';
import type { HttpTransport } from '../../shared/registry/transport.ts';
import { renderBase } from './base.ts';
import { checkGitRemote, openGitRemote, type GitRemote } from '../../shared/git/remote.ts';
import { commitFiles, remoteDefaultBranch, type Author } from './repo.ts';
import { readChartValues } from './chart-values.ts';
import type { EnclaveRegistry } from '../../shared/oci/mapping.ts';

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
  /** For ssh:// URLs: --ssh-key, --known-hosts; the key's passphrase comes from AIRLOCK_SSH_PASSPHRASE. */
  sshKey?: string;
  knownHosts?: string;
}

/** The folders under PATH a load's commit replaces whole (everything else, like overlays/, is kept). */
export const REPLACED_FOLDERS = ['base', 'airlock', 'rendered'] as const;
/** Kept inside a replaced folder: airlock approve's records (a new release must not wipe the approvals of the last one). */
export const KEPT_FOLDERS = ['airlock/approvals'] as const;

export interface CommitBundleResult {
  url: string;
  branch: string;
  path: string;
  commit?: string;
  createdBranch: boolean;
}

/** The files of the commit, rendered (and checked) before anything is pushed anywhere. */
export interface PreparedCommit {
  git: GitOptions;
  path: string;
  name: string;
  version: string;
  registry: EnclaveRegistry;
  files: Map<string, Buffer>;
}

/**
 * Render the base from the bundle. `report` is what lands in
 * airlock/load-report.json: only what the same bundle and registry always
 * give, so that a reload commits nothing.
 */
export async function prepareBundleCommit(args: {
  git: GitOptions;
  scan: BundleFileScan;
  source: BundleFileSource;
  registry: EnclaveRegistry;
  /** The registry speaks plain HTTP: Flux objects say so. */
  plainHttp?: boolean;
  report: unknown;
}): Promise<PreparedCommit> {
  const { git, scan } = args;
  checkGitRemote(git, '--git');
  const path = (git.path ?? scan.index.name).replace(/^\/+|\/+$/g, '');
  if (path === '' || path.split('/').some((s) => s === '..' || s === '.' || s === '')) throw new UsageError(`--git-path ${git.path}: not a relative folder`);
  const manifests = await Promise.all(args.source.entriesUnder('manifests/').map(async (e) => ({ path: e.path, bytes: await args.source.readEntry(e.path) })));
  const files = renderBase({
    index: scan.index,
    indexBytes: scan.indexBytes,
    signature: scan.signature,
    manifests,
    chartValues: await readChartValues(scan.index, args.source),
    registry: args.registry,
    plainHttp: args.plainHttp,
    loadReport: args.report,
  });
  return { git, path, name: scan.index.name, version: scan.index.version, registry: args.registry, files };
}

export async function commitBundle(prepared: PreparedCommit, transport: HttpTransport, beforePush?: () => Promise<void>): Promise<CommitBundleResult> {
  const { git, registry } = prepared;
  const remote = openRemote(git, transport);
  try {
    const result = await commitFiles({
      remote,
      branch: git.branch,
      path: prepared.path,
      replace: [...REPLACED_FOLDERS],
      keep: [...KEPT_FOLDERS],
      files: prepared.files,
      message: `airlock: load ${prepared.name} ${prepared.version}\n\nImages pinned to ${registry.host}${registry.prefix ? '/' + registry.prefix : ''} by digest${registry.mapDepth ? `, repository paths folded to ${registry.mapDepth} segments (--map-depth)` : ''}.\n`,
      author: authorOf(git.author),
      startFrom: await remoteDefaultBranch(remote),
      beforePush,
    });
    return { url: remote.display, branch: git.branch, path: prepared.path, commit: result.commit, createdBranch: result.createdBranch };
  } finally {
    await remote.close?.();
  }
}

export function openRemote(git: Pick<GitOptions, 'url' | 'username' | 'passwordEnv' | 'sshKey' | 'knownHosts'>, transport: HttpTransport): GitRemote {
  return openGitRemote(git, transport, '--git');
}

export function authorOf(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Author {
  if (flag) {
    const m = /^\s*(.+?)\s*<([^<>\s]+@[^<>\s]+)>\s*$/.exec(flag);
    if (!m) throw new UsageError(`--git-author ${flag}: expected "Name <email>"`);
    return { name: m[1]!, email: m[2]! };
  }
  return { name: env.GIT_AUTHOR_NAME || 'airlock', email: env.GIT_AUTHOR_EMAIL || 'airlock@localhost' };
}
