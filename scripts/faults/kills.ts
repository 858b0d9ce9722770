import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pLimit from 'p-limit';
import type { GitServer } from '../../test/services/gitServer.ts';
import type { RegistryService } from '../../test/services/registry.ts';
import type { S3Service } from '../../test/services/s3.ts';
import type { SshServer } from '../../test/services/sshd.ts';
import { airlock, resultOf, said, type Run } from './cli.ts';
import { absentOrComplete, completeFile, s3Object } from './files.ts';
import { incompleteTags, wrongDigests } from './registryGraph.ts';
import { seeded } from './rng.ts';
import { tally, violation, type Tally } from './tally.ts';
import { KEY_ENV, type World } from './world.ts';

/**
 * One command killed with SIGKILL at a random moment, its invariants checked, then run again.
 * `prepare` makes a trial's fresh state and returns its command line; `afterKill` lists what is
 * visibly wrong right after the kill; `afterRerun` what is wrong once the rerun exited 0.
 */
export interface KillCase {
  scenario: string;
  trials: number;
  env?: Record<string, string | undefined>;
  prepare(trial: number): Promise<string[]>;
  afterKill(trial: number): Promise<string[]>;
  afterRerun(trial: number, rerun: Run): Promise<string[]>;
}

/** Trials of one scenario running at once: each has state of its own, and the machine has 2 cores. */
const TRIAL_JOBS = 2;

export async function killCampaign(c: KillCase, seed: number): Promise<Tally> {
  const t = tally(c.scenario);
  const started = performance.now();
  // The command's duration, measured on a trial of its own, spreads the kills over its whole run.
  const measured = await airlock(await c.prepare(-1), { env: c.env });
  if (measured.code !== 0) throw new Error(`${c.scenario}: the measuring run failed: ${said(measured)}`);
  const random = seeded(seed);
  const delays = Array.from({ length: c.trials }, () => Math.floor(random() * measured.ms));
  const limit = pLimit(TRIAL_JOBS);
  await Promise.all(delays.map((killAfterMs, i) => limit(() => killTrial(c, t, i, `seed ${seed}, trial ${i}, killed after ${killAfterMs} ms`, killAfterMs))));
  t.seconds = (performance.now() - started) / 1000;
  return t;
}

async function killTrial(c: KillCase, t: Tally, i: number, what: string, killAfterMs: number): Promise<void> {
  const args = await c.prepare(i);
  t.trials++;
  const killed = await airlock(args, { env: c.env, killAfterMs });
  if (killed.signal !== 'SIGKILL' && killed.code !== 0) violation(t, `${what}: the killed run failed on its own: ${said(killed)}`);
  const broken = await c.afterKill(i);
  for (const b of broken) violation(t, `${what}: after the kill: ${b}`);
  const rerun = await airlock(args, { env: c.env });
  if (rerun.code !== 0) {
    violation(t, `${what}: the rerun ${said(rerun)}`, true);
    return;
  }
  const wrong = await c.afterRerun(i, rerun);
  for (const w of wrong) violation(t, `${what}: after the rerun: ${w}`, true);
  if (wrong.length === 0) t.completed++;
}

/** `repo:tag` -> digest a complete load of the bundle under `prefix` gives, from a reference load's report. */
export type Expected = (prefix: string) => Map<string, string>;

export async function referenceLoad(world: World, target: RegistryService, bundle: string): Promise<Expected> {
  const run = await airlock(['load', bundle, '--key', world.pub, '--registry', `${target.host}/ref`, '--plain-http', '--json']);
  if (run.code !== 0) throw new Error(`reference load failed: ${said(run)}`);
  const images = resultOf<{ images: { target: string; digest: string }[] }>(run).images;
  return (prefix) => new Map(images.map((i) => [i.target.replace(`${target.host}/ref/`, `${prefix}/`), i.digest]));
}

export function loadKills(world: World, target: RegistryService, bundle: string, expected: Expected, trials: number): KillCase {
  const prefix = (i: number) => `kill-load-${i < 0 ? 'm' : i}`;
  return {
    scenario: 'SIGKILL during load',
    trials,
    prepare: async (i) => ['load', bundle, '--key', world.pub, '--registry', `${target.host}/${prefix(i)}`, '--plain-http', '--jobs', '2'],
    afterKill: (i) => incompleteTags(target.url, prefix(i)),
    afterRerun: (i) => wrongDigests(target.url, expected(prefix(i))),
  };
}

/** A bundle under its final name verifies (signatures differ from pack to pack, so bytes are not compared). */
async function verifies(world: World, file: string): Promise<string[]> {
  const run = await airlock(['verify', file, '--key', world.pub]);
  return run.code === 0 ? [] : [`${file} is under its final name but does not verify: ${said(run)}`];
}

export function packKills(world: World, spec: string, trials: number): KillCase {
  const output = (i: number) => join(world.work, `kill-pack-${i < 0 ? 'm' : i}.tar`);
  return {
    scenario: 'SIGKILL during pack',
    trials,
    env: KEY_ENV,
    prepare: async (i) => world.packArgs(spec, output(i)),
    afterKill: async (i) => (existsSync(output(i)) ? verifies(world, output(i)) : []),
    afterRerun: async (i) => (existsSync(output(i)) ? verifies(world, output(i)) : [`${output(i)} is missing after the rerun`]),
  };
}

/**
 * load --git into a fresh repository per trial (images under one prefix, so the commit is the
 * same as the reference's): `dev` is absent (its old state) or at a commit with the reference tree.
 */
export async function gitLoadKills(world: World, target: RegistryService, git: GitServer, bundle: string, expected: Expected, trials: number): Promise<KillCase> {
  const repo = (i: number) => `kill-git-${i === -2 ? 'ref' : i < 0 ? 'm' : i}`;
  const args = (i: number) => ['load', bundle, '--key', world.pub, '--registry', `${target.host}/kill-git`, '--plain-http', '--ca-file', git.caFile, '--git', git.url(repo(i)), '--git-username', git.username, '--git-password-env', 'GIT_PW'];
  const env = { GIT_PW: git.password, GIT_SSL_CAINFO: git.caFile };
  await git.createRepo(repo(-2), { branch: 'main', files: { 'README.md': 'enclave apps\n' } });
  const reference = await airlock(args(-2), { env });
  if (reference.code !== 0) throw new Error(`reference load --git failed: ${said(reference)}`);
  const tree = await branchTree(git, repo(-2), 'dev');
  const branchProblems = async (i: number, mustExist: boolean) => {
    const got = await branchTree(git, repo(i), 'dev');
    if (got === undefined) return mustExist ? ['dev is missing after the rerun'] : [];
    const fsck = await git.git(repo(i), ['fsck', '--connectivity-only', '--no-progress']).then(() => [], (e: Error) => [`git fsck: ${e.message}`]);
    return [...fsck, ...(got === tree ? [] : [`dev is at a commit whose tree ${got.slice(0, 12)} is neither the old state nor the complete commit (${tree?.slice(0, 12)})`])];
  };
  return {
    scenario: 'SIGKILL during load --git',
    trials,
    env,
    prepare: async (i) => {
      await git.createRepo(repo(i), { branch: 'main', files: { 'README.md': 'enclave apps\n' } });
      return args(i);
    },
    afterKill: async (i) => [...(await incompleteTags(target.url, 'kill-git')), ...(await branchProblems(i, false))],
    afterRerun: async (i) => [...(await wrongDigests(target.url, expected('kill-git'))), ...(await branchProblems(i, true))],
  };
}

/** Upload and download of a bundle over S3 and SFTP: the file or object under its final name is absent or whole. */
export function transferKills(world: World, bundle: string, sha: string, s3: S3Service, sshd: SshServer, trials: number): KillCase[] {
  const s3Args = ['--s3-endpoint', s3.endpoint];
  const s3Env = { ...s3.env, AWS_ENDPOINT_URL: undefined, AWS_ENDPOINT_URL_S3: undefined, AWS_PROFILE: undefined };
  const sshArgs = ['--ssh-key', sshd.clientKey, '--known-hosts', sshd.knownHosts];
  const sftp = (path: string) => sshd.url(path).replace('ssh://', 'sftp://');
  const name = (i: number) => (i < 0 ? 'm' : String(i));
  const s3Present = async (key: string) => {
    const got = await s3Object(s3, key);
    return got === undefined || got === sha ? [] : [`s3://${s3.bucket}/${key} exists but is not the whole bundle`];
  };
  const sftpDir = (i: number) => join(world.work, `sftp-up-${name(i)}`);
  return [
    {
      scenario: 'SIGKILL during upload to S3',
      trials,
      env: s3Env,
      prepare: async (i) => ['upload', bundle, `s3://${s3.bucket}/up-${name(i)}/`, '--part-size', '5M', ...s3Args],
      afterKill: (i) => s3Present(`up-${name(i)}/medium.tar`),
      afterRerun: async (i) => ((await s3Object(s3, `up-${name(i)}/medium.tar`)) === sha ? [] : ['the uploaded object is not the bundle']),
    },
    {
      scenario: 'SIGKILL during download from S3',
      trials,
      env: s3Env,
      prepare: async (i) => ['download', `s3://${s3.bucket}/up-m/medium.tar`, '-o', join(world.work, `dl-s3-${name(i)}.tar`), ...s3Args],
      afterKill: (i) => absentOrComplete(join(world.work, `dl-s3-${name(i)}.tar`), sha),
      afterRerun: (i) => completeFile(join(world.work, `dl-s3-${name(i)}.tar`), sha),
    },
    {
      scenario: 'SIGKILL during upload over SFTP',
      trials,
      prepare: async (i) => {
        mkdirSync(sftpDir(i), { recursive: true });
        return ['upload', bundle, sftp(`${sftpDir(i)}/`), ...sshArgs];
      },
      afterKill: (i) => absentOrComplete(join(sftpDir(i), 'medium.tar'), sha),
      afterRerun: (i) => completeFile(join(sftpDir(i), 'medium.tar'), sha),
    },
    {
      scenario: 'SIGKILL during download over SFTP',
      trials,
      prepare: async (i) => ['download', sftp(bundle), '-o', join(world.work, `dl-sftp-${name(i)}.tar`), ...sshArgs],
      afterKill: (i) => absentOrComplete(join(world.work, `dl-sftp-${name(i)}.tar`), sha),
      afterRerun: (i) => completeFile(join(world.work, `dl-sftp-${name(i)}.tar`), sha),
    },
  ];
}

/** git: the branch is absent (its old state) or at a commit whose tree is the reference tree. */
export async function branchTree(git: GitServer, repo: string, branch: string): Promise<string | undefined> {
  try {
    return (await git.git(repo, ['rev-parse', '--verify', '-q', `refs/heads/${branch}^{tree}`])).trim();
  } catch {
    return undefined;
  }
}


/**
 * promote dev -> prod in a fresh repository per trial (dev written by a load first): `prod` is
 * absent (its old state) or at a commit with the reference tree, and `dev` does not move.
 */
export async function promoteKills(world: World, target: RegistryService, git: GitServer, bundle: string, trials: number): Promise<KillCase> {
  const repo = (i: number) => `kill-promote-${i === -2 ? 'ref' : i < 0 ? 'm' : i}`;
  const gitArgs = (i: number) => ['--ca-file', git.caFile, '--git', git.url(repo(i)), '--git-username', git.username, '--git-password-env', 'GIT_PW'];
  const env = { GIT_PW: git.password, GIT_SSL_CAINFO: git.caFile };
  const devs = new Map<number, string | undefined>();
  // The images once; each trial's load then writes only its repository (--skip-images).
  const images = await airlock(['load', bundle, '--key', world.pub, '--registry', `${target.host}/kill-promote`, '--plain-http']);
  if (images.code !== 0) throw new Error(`promote: the load of the images failed: ${said(images)}`);
  const prepare = async (i: number) => {
    await git.createRepo(repo(i), { branch: 'main', files: { 'README.md': 'enclave apps\n' } });
    const loaded = await airlock(['load', bundle, '--key', world.pub, '--registry', `${target.host}/kill-promote`, '--plain-http', '--skip-images', ...gitArgs(i)], { env });
    if (loaded.code !== 0) throw new Error(`promote: the load before it failed: ${said(loaded)}`);
    devs.set(i, await branchTree(git, repo(i), 'dev'));
    return ['promote', '--to', 'prod', ...gitArgs(i)];
  };
  const reference = await airlock(await prepare(-2), { env });
  if (reference.code !== 0) throw new Error(`reference promote failed: ${said(reference)}`);
  const tree = await branchTree(git, repo(-2), 'prod');
  const problems = async (i: number, mustExist: boolean) => {
    const out: string[] = [];
    if ((await branchTree(git, repo(i), 'dev')) !== devs.get(i)) out.push('dev moved');
    const got = await branchTree(git, repo(i), 'prod');
    if (got === undefined) return mustExist ? [...out, 'prod is missing after the rerun'] : out;
    if (got !== tree) out.push(`prod is at a commit whose tree ${got.slice(0, 12)} is neither the old state nor the complete promotion (${tree?.slice(0, 12)})`);
    return out;
  };
  return {
    scenario: 'SIGKILL during promote',
    trials,
    env,
    prepare,
    afterKill: (i) => problems(i, false),
    afterRerun: (i) => problems(i, true),
  };
}
