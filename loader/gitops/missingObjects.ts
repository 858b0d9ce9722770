import fs from 'node:fs';
import git from 'isomorphic-git';

/**
 * The objects a push must send: the commits from `tip` back to the first
 * ones the server already has, with every tree and blob of theirs that the
 * server's commits at that boundary do not hold. isomorphic-git works this
 * out inside its push, which cannot carry push options; this is the same
 * selection for a receive-pack request airlock builds itself.
 */
export async function missingObjects(gitdir: string, tip: string, serverHas: Iterable<string>): Promise<string[]> {
  const has = new Set(serverHas);
  const commits: string[] = [];
  const boundary = new Set<string>();
  const seen = new Set<string>();
  const queue = [tip];
  while (queue.length > 0) {
    const oid = queue.pop()!;
    if (seen.has(oid)) continue;
    seen.add(oid);
    if (has.has(oid)) {
      boundary.add(oid);
      continue;
    }
    const { commit } = await git.readCommit({ fs, gitdir, oid });
    commits.push(oid);
    queue.push(...commit.parent);
  }
  if (commits.length === 0) return [];

  const known = new Set<string>();
  for (const oid of boundary) await collectTree(gitdir, (await git.readCommit({ fs, gitdir, oid })).commit.tree, known, new Set());
  const send = new Set<string>(commits);
  for (const oid of commits) await collectTree(gitdir, (await git.readCommit({ fs, gitdir, oid })).commit.tree, send, known);
  return [...send];
}

/** Adds the tree and everything under it to `into`, skipping (with all below) what `skip` or `into` already holds. */
async function collectTree(gitdir: string, tree: string, into: Set<string>, skip: Set<string>): Promise<void> {
  if (skip.has(tree) || into.has(tree)) return;
  into.add(tree);
  for (const entry of (await git.readTree({ fs, gitdir, oid: tree })).tree) {
    if (entry.type === 'tree') await collectTree(gitdir, entry.oid, into, skip);
    else if (entry.type === 'blob' && !skip.has(entry.oid)) into.add(entry.oid);
    // 'commit' entries are submodules: their objects live in another repository
  }
}
