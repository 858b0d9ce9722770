import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import git, { Errors, type TreeEntry } from 'isomorphic-git';
import { PolicyError, RemoteError } from '../../shared/cli/errors.ts';
import { gitRemoteCall, type GitRemote } from '../../shared/git/remote.ts';
import { tolerateUnbornHead } from './unbornHead.ts';

/**
 * Commits to a branch of a remote repository without a working copy: a
 * temporary bare repository receives only the branch tip (a depth-1 fetch of
 * one branch, never a full clone); the new tree is built from git objects,
 * replacing whole folders under one path and keeping everything else (the
 * environment overlays, other applications); the commit is pushed. When
 * another writer moved the branch in between, the commit is rebuilt on the
 * new tip and pushed again.
 */
export type { GitRemote };

export interface Author {
  name: string;
  email: string;
}

export interface CommitFilesOptions {
  remote: GitRemote;
  branch: string;
  /** Folder in the repository; each of `replace` below it is replaced whole. */
  path: string;
  /** Folders under `path` that the commit replaces whole ("base", "airlock"). */
  replace: string[];
  /** Files by path relative to `path`; each must lie under one of `replace`. */
  files: Map<string, Buffer>;
  /** Folders inside a replaced one that another command owns, kept as they are ("airlock/approvals"). */
  keep?: string[];
  message: string;
  author: Author;
  /** Where a missing branch starts: another branch of the remote, or empty history. */
  startFrom?: string;
  /** Tries when the branch moves under us (default 5). */
  attempts?: number;
  /** Test seam: runs after the tip was read and before the push. */
  beforePush?: () => Promise<void>;
}

export interface CommitFilesResult {
  /** The new commit, or undefined when nothing changed. */
  commit?: string;
  /** The tip the commit was built on (undefined for a new branch with no history). */
  parent?: string;
  createdBranch: boolean;
  attempts: number;
}

export async function commitFiles(options: CommitFilesOptions): Promise<CommitFilesResult> {
  const gitdir = await mkdtemp(join(tmpdir(), 'airlock-git-'));
  try {
    await initRepository(gitdir, options.remote, options.branch);
    const max = options.attempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      const tip = await fetchTip(gitdir, options.remote, options.branch);
      let parent = tip;
      let createdBranch = false;
      if (!parent) {
        createdBranch = true;
        parent = options.startFrom ? await fetchTip(gitdir, options.remote, options.startFrom) : undefined;
      }
      const baseTree = parent ? (await git.readCommit({ fs, gitdir, oid: parent })).commit.tree : undefined;
      const tree = await replaceFolders(gitdir, baseTree, options.path, options.replace, options.files, options.keep ?? []);
      if (tree === baseTree && !createdBranch) return { parent, createdBranch, attempts: attempt };
      const now = Math.floor(Date.now() / 1000);
      const who = { ...options.author, timestamp: now, timezoneOffset: new Date().getTimezoneOffset() };
      const commit =
        tree === baseTree && parent
          ? parent // a new branch at an existing commit: nothing to commit
          : await git.writeCommit({ fs, gitdir, commit: { message: options.message, tree, parent: parent ? [parent] : [], author: who, committer: who } });
      await git.writeRef({ fs, gitdir, ref: `refs/heads/${options.branch}`, value: commit, force: true });
      await options.beforePush?.();
      const pushed = await push(gitdir, options.remote, options.branch, tip === undefined);
      if (pushed === 'ok') return { commit: commit === parent ? undefined : commit, parent, createdBranch, attempts: attempt };
      if (attempt >= max) {
        throw new RemoteError(`git push to ${options.remote.display} ${options.branch}: the branch kept moving (${max} tries)`, {
          hint: 'another writer is pushing to this branch; run the same command again',
        });
      }
    }
  } finally {
    await rm(gitdir, { recursive: true, force: true });
  }
}

/** An empty bare repository whose origin is the remote. */
export async function initRepository(gitdir: string, remote: GitRemote, defaultBranch: string): Promise<void> {
  await git.init({ fs, gitdir, bare: true, defaultBranch });
  await git.addRemote({ fs, gitdir, remote: 'origin', url: remote.url });
}

/** The branch's tip (fetched, depth 1), or undefined when the remote has no such branch. */
export async function fetchTip(gitdir: string, remote: GitRemote, branch: string, depth: number | undefined = 1): Promise<string | undefined> {
  const oid = (await listRemote(remote)).branches.get(branch);
  if (!oid) return undefined;
  await gitRemoteCall(remote, `fetch ${branch}`, () =>
    git.fetch({
      fs,
      http: tolerateUnbornHead(remote.http, `refs/heads/${branch}`),
      gitdir,
      remote: 'origin',
      ref: branch,
      remoteRef: branch,
      singleBranch: true,
      tags: false,
      ...(depth ? { depth } : {}),
    }),
  );
  return oid;
}

/** The branch the remote's HEAD names (where a new branch starts), if it exists. */
export async function remoteDefaultBranch(remote: GitRemote): Promise<string | undefined> {
  const { branches, head } = await listRemote(remote);
  return head !== undefined && branches.has(head) ? head : undefined;
}

export interface RemoteListing {
  /** Branch name (without refs/heads/) to its tip. */
  branches: Map<string, string>;
  /** The branch HEAD names, when the server says (it does not for a HEAD whose branch does not exist yet). */
  head?: string;
}

/**
 * The remote's branches and HEAD, from the protocol v0 ref advertisement
 * (getRemoteInfo). Not listServerRefs: on a repository with no refs it
 * mistakes a v0 server for v2 and sends a v2 request (git over SSH fails).
 */
export async function listRemote(remote: GitRemote): Promise<RemoteListing> {
  const info = await gitRemoteCall(remote, 'list branches', () => git.getRemoteInfo({ http: remote.http, url: remote.url }));
  const branches = new Map<string, string>();
  const walk = (node: unknown, prefix: string) => {
    for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
      if (typeof v === 'string') branches.set(`${prefix}${k}`, v);
      else if (v && typeof v === 'object') walk(v, `${prefix}${k}/`);
    }
  };
  walk(info.refs?.heads ?? {}, '');
  const head = typeof info.HEAD === 'string' && info.HEAD.startsWith('refs/heads/') ? info.HEAD.slice('refs/heads/'.length) : undefined;
  return { branches, ...(head ? { head } : {}) };
}

/** Push a branch: 'ok', or 'moved' when the remote branch moved since it was read. Refusals are exit 5. */
export async function push(gitdir: string, remote: GitRemote, branch: string, isNew: boolean): Promise<'ok' | 'moved'> {
  const messages: string[] = [];
  let result;
  try {
    result = await gitRemoteCall(remote, `push ${branch}`, () =>
      git.push({ fs, http: remote.http, gitdir, remote: 'origin', ref: branch, remoteRef: branch, onMessage: (m) => void messages.push(m.trim()) }),
    );
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause ?? err;
    if (cause instanceof Errors.PushRejectedError) return 'moved';
    if (cause instanceof Errors.GitPushError) result = cause.data.result;
    else throw err;
  }
  const status = result.refs[`refs/heads/${branch}`];
  if (result.ok && (!status || status.ok)) return 'ok';
  const why = [status?.error ?? result.error, ...messages].filter(Boolean).join('; ');
  if (/non-fast-forward|fetch first|stale info|failed to lock|cannot lock ref/i.test(why) && !isNew) return 'moved';
  throw new PolicyError(`git server ${remote.display} refused the push to branch ${branch}: ${why || 'no reason given'}`, {
    hint: 'the branch may be protected: push to another branch and open a merge request (promote --review), or ask the server admin',
  });
}

/** Build the tree with `path/<each of replace>` replaced by the given files (and what `keep` names kept); everything else kept. */
async function replaceFolders(gitdir: string, baseTree: string | undefined, path: string, replace: string[], files: Map<string, Buffer>, keep: string[]): Promise<string> {
  const segments = path.split('/').filter(Boolean);
  let tree = baseTree ?? (await git.writeTree({ fs, gitdir, tree: [] }));
  for (const folder of replace) {
    const mine = new Map([...files].filter(([p]) => p.startsWith(`${folder}/`)).map(([p, b]) => [p.slice(folder.length + 1), b]));
    let oid = mine.size > 0 ? await writeFolder(gitdir, mine) : undefined;
    for (const kept of keep.filter((k) => k.startsWith(`${folder}/`))) {
      const old = baseTree ? await entryAt(gitdir, baseTree, [...segments, ...kept.split('/')]) : undefined;
      if (old) oid = await putEntry(gitdir, oid, kept.slice(folder.length + 1).split('/'), old);
    }
    tree = await putEntry(gitdir, tree, [...segments, folder], oid === undefined ? undefined : { mode: '040000', oid, type: 'tree' });
  }
  return tree;
}

/** The entry at `path` (segments) of the tree, or undefined. */
async function entryAt(gitdir: string, tree: string, path: string[]): Promise<Omit<TreeEntry, 'path'> | undefined> {
  let entries = (await git.readTree({ fs, gitdir, oid: tree })).tree;
  for (const [i, name] of path.entries()) {
    const e = entries.find((x) => x.path === name);
    if (!e || i === path.length - 1) return e && { mode: e.mode, oid: e.oid, type: e.type };
    if (e.type !== 'tree') return undefined;
    entries = (await git.readTree({ fs, gitdir, oid: e.oid })).tree;
  }
  return undefined;
}

/**
 * The tree with the entry at `path` (segments) set to `entry`, or removed when
 * undefined; the folders on the way are created as needed, everything else is kept.
 */
export async function putEntry(gitdir: string, tree: string | undefined, path: string[], entry: Omit<TreeEntry, 'path'> | undefined): Promise<string> {
  const entries: TreeEntry[] = tree ? (await git.readTree({ fs, gitdir, oid: tree })).tree : [];
  const [name, ...rest] = path;
  const others = entries.filter((e) => e.path !== name!);
  if (rest.length === 0) return git.writeTree({ fs, gitdir, tree: entry ? [...others, { ...entry, path: name! }] : others });
  const existing = entries.find((e) => e.path === name && e.type === 'tree');
  const child = await putEntry(gitdir, existing?.oid, rest, entry);
  return git.writeTree({ fs, gitdir, tree: [...others, { mode: '040000', path: name!, oid: child, type: 'tree' }] });
}

async function writeFolder(gitdir: string, files: Map<string, Buffer>): Promise<string> {
  const here: TreeEntry[] = [];
  const sub = new Map<string, Map<string, Buffer>>();
  for (const [p, bytes] of files) {
    const slash = p.indexOf('/');
    if (slash < 0) {
      here.push({ mode: '100644', path: p, oid: await git.writeBlob({ fs, gitdir, blob: bytes }), type: 'blob' });
    } else {
      const dir = p.slice(0, slash);
      if (!sub.has(dir)) sub.set(dir, new Map());
      sub.get(dir)!.set(p.slice(slash + 1), bytes);
    }
  }
  for (const [dir, inner] of sub) here.push({ mode: '040000', path: dir, oid: await writeFolder(gitdir, inner), type: 'tree' });
  return git.writeTree({ fs, gitdir, tree: here });
}
