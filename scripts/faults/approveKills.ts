import type { GitServer } from '../../test/services/gitServer.ts';
import type { RegistryService } from '../../test/services/registry.ts';
import { airlock, said } from './cli.ts';
import type { KillCase } from './kills.ts';
import { graphProblems, incompleteTags } from './registryGraph.ts';
import { KEY_ENV, type World } from './world.ts';

interface ApprovalRecord {
  approvals: { image: string; outcome: string; signature?: { tag: string } }[];
}

/**
 * approve killed at random moments: each trial loads the small bundle (images and `dev`) under a
 * prefix and a repository of its own, then approves it. After the kill every tag (the .sig tags
 * included) has a complete graph, and `dev` is at its old commit or at one that only adds complete
 * approval records: every image accepted, each signature it names there in full.
 */
export async function approveKills(world: World, target: RegistryService, git: GitServer, bundle: string, images: number, trials: number): Promise<KillCase> {
  const name = (i: number) => `kill-approve-${i < 0 ? 'm' : i}`;
  const gitArgs = (i: number) => ['--ca-file', git.caFile, '--git', git.url(name(i)), '--git-username', git.username, '--git-password-env', 'GIT_PW'];
  const env = { ...KEY_ENV, GIT_PW: git.password, GIT_SSL_CAINFO: git.caFile };
  const before = new Map<number, string>();
  const devCommit = async (i: number) => (await git.git(name(i), ['rev-parse', '--verify', '-q', 'refs/heads/dev'])).trim();

  const recordProblems = async (i: number, recordNeeded: boolean): Promise<string[]> => {
    const old = before.get(i)!;
    const now = await devCommit(i);
    const fsck = await git.git(name(i), ['fsck', '--connectivity-only', '--no-progress']).then(() => [], (e: Error) => [`git fsck: ${e.message}`]);
    if (now === old) return recordNeeded ? [...fsck, 'dev has no approval record after the rerun'] : fsck;
    const changed = (await git.git(name(i), ['diff', '--name-only', old, now])).trim().split('\n');
    const problems = [...fsck, ...changed.filter((f) => !f.includes('/airlock/approvals/')).map((f) => `dev changed ${f}, outside the approval records`)];
    for (const file of changed.filter((f) => f.endsWith('/approvals.json'))) {
      const record = JSON.parse(await git.git(name(i), ['show', `${now}:${file}`])) as ApprovalRecord;
      const accepted = record.approvals.filter((a) => a.outcome === 'accepted' && a.signature);
      if (accepted.length !== images) problems.push(`${file} records ${accepted.length} signed approvals, not ${images}`);
      for (const a of accepted) {
        const repository = a.image.slice(target.host.length + 1).split('@')[0]!;
        for (const p of await graphProblems(target.url, repository, a.signature!.tag)) problems.push(`${file} names a signature that is not there whole: ${p}`);
      }
    }
    return problems;
  };

  return {
    scenario: 'SIGKILL during approve',
    trials,
    env,
    prepare: async (i) => {
      await git.createRepo(name(i), { branch: 'main', files: { 'README.md': 'enclave apps\n' } });
      const loaded = await airlock(['load', bundle, '--key', world.pub, '--registry', `${target.host}/${name(i)}`, '--plain-http', ...gitArgs(i)], { env });
      if (loaded.code !== 0) throw new Error(`approve: the load before it failed: ${said(loaded)}`);
      before.set(i, await devCommit(i));
      return ['approve', '--registry', target.host, '--plain-http', '--key', world.key, ...gitArgs(i)];
    },
    afterKill: async (i) => [...(await incompleteTags(target.url, name(i))), ...(await recordProblems(i, false))],
    afterRerun: async (i) => [...(await incompleteTags(target.url, name(i))), ...(await recordProblems(i, true))],
  };
}
