import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import git from 'isomorphic-git';
import { gitRemoteCall } from '../../shared/git/remote.ts';
import type { HttpTransport } from '../../shared/registry/transport.ts';
import { KEPT_FOLDERS, openRemote, REPLACED_FOLDERS, type PreparedCommit } from './commit.ts';
import { fetchTip, initRepository, listRemote } from './repo.ts';

/**
 * load --dry-run --git: everything the real commit would check of the
 * repository (it answers, the credentials may push, the branch is there or
 * where it would start), and the commit it would make as files added,
 * changed and removed under PATH. Nothing is pushed: the branch tip is
 * fetched (depth 1) into a temporary repository and compared there.
 */
export interface GitCommitPlan {
  url: string;
  branch: string;
  path: string;
  /** The branch does not exist yet: the commit would create it, from `startFrom` (the remote's default branch) or from nothing. */
  createdBranch: boolean;
  startFrom?: string;
  /** The commit the new one would follow. */
  parent?: string;
  /** Repository paths (PATH/...), sorted. */
  added: string[];
  changed: string[];
  removed: string[];
}

export async function planBundleCommit(prepared: PreparedCommit, transport: HttpTransport): Promise<GitCommitPlan> {
  const { git: options, path } = prepared;
  const remote = openRemote(options, transport);
  const gitdir = await mkdtemp(join(tmpdir(), 'airlock-git-plan-'));
  try {
    // 1. Reachable, and the credentials may push: the receive-pack advertisement asks for what a push needs.
    await gitRemoteCall(remote, 'check push access', () => git.getRemoteInfo({ http: remote.http, url: remote.url, forPush: true }));

    // 2. The branch, or the one it would start from.
    const { branches, head } = await listRemote(remote);
    const createdBranch = !branches.has(options.branch);
    const startFrom = createdBranch && head !== undefined && branches.has(head) ? head : undefined;
    const from = createdBranch ? startFrom : options.branch;
    await initRepository(gitdir, remote, options.branch);
    const parent = from === undefined ? undefined : await fetchTip(gitdir, remote, from);

    // 3. What is under PATH/<replaced folders> now, against what the commit writes there.
    const before = new Map<string, string>();
    if (parent) {
      const tree = (await git.readCommit({ fs, gitdir, oid: parent })).commit.tree;
      for (const folder of REPLACED_FOLDERS) await collectBlobs(gitdir, tree, [...path.split('/'), folder], `${folder}/`, before);
    }
    const added: string[] = [];
    const changed: string[] = [];
    for (const [file, bytes] of prepared.files) {
      const { oid } = await git.hashBlob({ object: bytes });
      const old = before.get(file);
      if (old === undefined) added.push(`${path}/${file}`);
      else if (old !== oid) changed.push(`${path}/${file}`);
    }
    const kept = (f: string) => KEPT_FOLDERS.some((k) => f.startsWith(`${k}/`));
    const removed = [...before.keys()].filter((f) => !prepared.files.has(f) && !kept(f)).map((f) => `${path}/${f}`);
    return {
      url: remote.display,
      branch: options.branch,
      path,
      createdBranch,
      ...(startFrom ? { startFrom } : {}),
      ...(parent ? { parent } : {}),
      added: added.sort(),
      changed: changed.sort(),
      removed: removed.sort(),
    };
  } finally {
    await rm(gitdir, { recursive: true, force: true });
    await remote.close?.();
  }
}

/** Every blob under `segments` of `tree`, by path (`prefix` + its path below), into `into`. */
async function collectBlobs(gitdir: string, tree: string, segments: string[], prefix: string, into: Map<string, string>): Promise<void> {
  let oid = tree;
  for (const name of segments.filter(Boolean)) {
    const entry = (await git.readTree({ fs, gitdir, oid })).tree.find((e) => e.path === name);
    if (!entry || entry.type !== 'tree') return;
    oid = entry.oid;
  }
  const walk = async (at: string, below: string): Promise<void> => {
    for (const e of (await git.readTree({ fs, gitdir, oid: at })).tree) {
      if (e.type === 'tree') await walk(e.oid, `${below}${e.path}/`);
      else if (e.type === 'blob') into.set(`${below}${e.path}`, e.oid);
    }
  };
  await walk(oid, prefix);
}

/** At most this many paths a kind in the human output (--json has them all). */
const SHOWN = 50;

/** The plan as lines for the load report. */
export function formatGitCommitPlan(p: GitCommitPlan): string {
  const where = `${p.branch} in ${p.url} under ${p.path}/`;
  const branch = p.createdBranch ? ` (a new branch${p.startFrom ? ` from ${p.startFrom}` : ', with no history'})` : '';
  const total = p.added.length + p.changed.length + p.removed.length;
  if (total === 0 && !p.createdBranch) return `git: ${where} already matches this bundle; no commit would be made (repository reachable, push allowed)`;
  const lines = [
    `git: would commit to ${where}${branch}: ${p.added.length} added, ${p.changed.length} changed, ${p.removed.length} removed (repository reachable, push allowed; nothing pushed)`,
  ];
  for (const [mark, files] of [['+', p.added], ['~', p.changed], ['-', p.removed]] as const) {
    lines.push(...files.slice(0, SHOWN).map((f) => `  ${mark} ${f}`));
    if (files.length > SHOWN) lines.push(`  ${mark} ... and ${files.length - SHOWN} more (--json lists them all)`);
  }
  return lines.join('\n');
}
