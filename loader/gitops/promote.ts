import fs from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import git, { Errors } from 'isomorphic-git';
import { PolicyError, RemoteError, UsageError } from '../../shared/cli/errors.ts';
import type { HttpTransport } from '../../shared/registry/transport.ts';
import { authorOf, openRemote } from './commit.ts';
import { pushWithOptions } from './pushOptions.ts';
import { pinnedImages } from './pinned.ts';
import { requireApproval } from './requireApproval.ts';
import type { RegistryClient } from '../../shared/registry/client.ts';
import { registryClient, registryClients, type AccessLog, type RegistryAccess } from '../../shared/registry/access.ts';
import { readPublicKey } from '../../shared/sign/keys.ts';
import { fetchTip, initRepository, push, putEntry, type GitRemote } from './repo.ts';
import { reviewPush, type ReviewStyle } from './reviewStyles.ts';
import { releaseChanges, type ReleaseChanges } from './releaseChanges.ts';
import { readReleaseState } from './releaseState.ts';
import { commitMessage, reviewText } from './reviewText.ts';
import { Progress } from '../../shared/cli/progress.ts';
import { parseRegistryTarget } from '../load.ts';
import { copyToEnvironment, planEnvironment, type EnvironmentCopyReport } from './envRegistry.ts';
import { checkOverlayUsesComponent, putComponent, renderComponent, STARTER_COMPONENT_LINES } from './envComponent.ts';

/**
 * airlock promote: merge the dev branch into an environment branch (or push a
 * review branch for a merge request). A missing environment branch is created
 * from dev with a starter overlay, PATH/overlays/ENV/kustomization.yaml; an
 * existing one gets a merge, and its overlay must come out of it untouched.
 * A conflict changes nothing (exit 5).
 */
export interface PromoteOptions {
  url: string;
  from: string;
  to: string;
  /** Folder in the repository; default: the one folder holding airlock/airlock.json on `from`. */
  path?: string;
  review?: boolean;
  /** How the review reaches the server (default branch); only with `review`. */
  reviewStyle?: ReviewStyle;
  sshKey?: string;
  knownHosts?: string;
  username?: string;
  passwordEnv?: string;
  author?: string;
  /** --require-approval: the approver's public key (PEM file); every image dev pins must carry its signature. */
  requireApproval?: string;
  /** How to reach the registry the images are pinned to (--require-approval, and the source of --env-registry's copy). */
  registry?: RegistryAccess;
  /**
   * --env-registry HOST[:PORT][/PREFIX]: the environment pulls from its own
   * registry. What it will receive is copied there first (from the registry
   * dev pins, with `registry`'s credentials), and PATH/overlays/ENV/airlock/
   * maps the names (envComponent.ts).
   */
  envRegistry?: { registry: string; access: RegistryAccess };
  /** Where warnings go (credential helpers, the copy). */
  log?: Pick<AccessLog, 'warn'>;
  /** Registry transfers at once (--jobs). */
  jobs?: number;
  /** Progress of the copy into the environment registry. */
  progress?: Progress;
}

export interface PromoteResult {
  url: string;
  /** The branch pushed: the environment, or the review branch. */
  branch: string;
  path: string;
  name: string;
  version: string;
  /** 'registry mapped': the environment had the release, and only its airlock component changed (--env-registry). */
  outcome: 'created' | 'merged' | 'fast-forward' | 'up to date' | 'registry mapped' | 'review pushed';
  commit?: string;
  /** With --review: the style, the ref pushed and the review's title. */
  review?: { style: ReviewStyle; ref: string; title: string };
  /** What the environment receives (absent when it is up to date). */
  changes?: ReleaseChanges;
  /** The review text: the merge commit's message, and the merge request's title and description. */
  title?: string;
  description?: string;
  /** With --env-registry: what was copied into the environment registry. */
  envRegistry?: EnvironmentCopyReport;
}

export async function promote(options: PromoteOptions, transport: HttpTransport): Promise<PromoteResult> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._/-]*$/.test(options.to) || options.to.includes('..')) throw new UsageError(`--to ${options.to}: not a branch name`);
  if (options.reviewStyle !== undefined && !options.review) {
    throw new UsageError(`--review-style ${options.reviewStyle} goes with --review`, { hint: 'add --review, or drop --review-style to promote directly' });
  }
  const approverKey = options.requireApproval
    ? readPublicKey(
        await readFile(options.requireApproval, 'utf8').catch((err: Error) => {
          throw new UsageError(`cannot read the approver's public key ${options.requireApproval}: ${err.message}`);
        }),
        options.requireApproval,
      )
    : undefined;
  const envTarget = options.envRegistry ? parseRegistryTarget(options.envRegistry.registry, '--env-registry') : undefined;
  const sourceClient = registryClients(transport, options.registry ?? {}, options.log ?? SILENT);
  const remote = openRemote(options, transport);
  const author = authorOf(options.author);
  const gitdir = await mkdtemp(join(tmpdir(), 'airlock-promote-'));
  try {
    await initRepository(gitdir, remote, options.from);
    for (let attempt = 1; ; attempt++) {
      const fromTip = await fetchTip(gitdir, remote, options.from, 0);
      if (!fromTip) throw new UsageError(`${remote.display} has no branch ${options.from}`, { hint: 'run airlock load --git first' });
      const path = options.path?.replace(/^\/+|\/+$/g, '') ?? (await findBundleFolder(gitdir, fromTip, remote, options.from));
      const { name, version } = await readRelease(gitdir, fromTip, path, options.from);
      if (approverKey) await requireApproval(await pinnedImages(gitdir, fromTip, path, options.from), approverKey, sourceClient);
      const toTip = await fetchTip(gitdir, remote, options.to, 0);
      if (!toTip && options.review) throw new UsageError(`${options.to} does not exist yet: promote without --review creates it from ${options.from}`);
      const environment = envTarget
        ? await copyEnvironment({ ...options, envRegistry: options.envRegistry! }, envTarget, { gitdir, fromTip, toTip, path, name, version }, sourceClient, transport)
        : undefined;
      const after = await readReleaseState(gitdir, fromTip, path);
      const changes = releaseChanges(toTip ? await readReleaseState(gitdir, toTip, path) : undefined, after!);
      const text = reviewText({ name, version, from: options.from, to: options.to }, changes, path);
      const told = { changes, title: text.title, description: text.description, ...(environment ? { envRegistry: environment.report } : {}) };
      const who = { ...author, timestamp: Math.floor(Date.now() / 1000), timezoneOffset: new Date().getTimezoneOffset() };

      let commit: string;
      let outcome: PromoteResult['outcome'];
      if (!toTip) {
        const tree = await addStarterOverlay(gitdir, fromTip, path, options.to, environment !== undefined);
        commit = await git.writeCommit({
          fs,
          gitdir,
          commit: { message: commitMessage({ ...text, title: `airlock: create ${options.to} from ${options.from} (${name} ${version})` }), tree, parent: [fromTip], author: who, committer: who },
        });
        outcome = 'created';
      } else {
        await git.writeRef({ fs, gitdir, ref: `refs/heads/${options.to}`, value: toTip, force: true });
        await git.writeRef({ fs, gitdir, ref: `refs/heads/${options.from}`, value: fromTip, force: true });
        const overlayBefore = await subtree(gitdir, toTip, `${path}/overlays`);
        let merged;
        try {
          merged = await git.merge({
            fs,
            gitdir,
            ours: options.to,
            theirs: options.from,
            author: who,
            committer: who,
            message: commitMessage(text),
            abortOnConflict: true,
          });
        } catch (err) {
          if (err instanceof Errors.MergeConflictError || err instanceof Errors.MergeNotSupportedError) {
            const files = (err.data as { filepaths?: string[] }).filepaths;
            throw new PolicyError(`promote ${options.from} -> ${options.to}: the merge conflicts${files?.length ? ` in ${files.join(', ')}` : ''}; nothing was changed`, {
              hint: `someone changed ${options.to} outside its overlay; resolve the merge by hand (git merge ${options.from}) and push`,
            });
          }
          throw err;
        }
        if (merged.alreadyMerged && !environment) return { url: remote.display, branch: options.to, path, name, version, outcome: 'up to date' };
        commit = merged.alreadyMerged ? toTip : merged.oid!;
        if ((await subtree(gitdir, commit, `${path}/overlays`)) !== overlayBefore) {
          throw new PolicyError(`promote ${options.from} -> ${options.to}: the merge would change ${path}/overlays; nothing was changed`, {
            hint: `overlays belong to the environment branches: remove ${path}/overlays from ${options.from}`,
          });
        }
        outcome = merged.alreadyMerged ? 'up to date' : merged.fastForward ? 'fast-forward' : 'merged';
      }
      if (environment) {
        ({ commit, outcome } = await withComponent(gitdir, { commit, outcome, fromTip, toTip, path, env: options.to, bytes: environment.component, who, message: commitMessage(text) }));
        if (outcome === 'up to date') return { url: remote.display, branch: options.to, path, name, version, outcome, ...told };
      }

      if (options.review) {
        const style = options.reviewStyle ?? 'branch';
        const plan = reviewPush(style, options.to, version, text);
        const branch = plan.ref.replace(/^refs\/heads\//, '');
        const reviewed = { url: remote.display, branch, path, name, version, outcome: 'review pushed' as const, commit, review: { style, ref: plan.ref, title: text.title }, ...told };
        if (style !== 'branch') {
          await pushWithOptions({ gitdir, remote, ref: plan.ref, commit, options: plan.options });
          return reviewed;
        }
        await git.writeRef({ fs, gitdir, ref: plan.ref, value: commit, force: true });
        if ((await push(gitdir, remote, branch, true)) === 'ok') return reviewed;
      } else {
        await git.writeRef({ fs, gitdir, ref: `refs/heads/${options.to}`, value: commit, force: true });
        const pushed = await push(gitdir, remote, options.to, !toTip);
        if (pushed === 'ok') return { url: remote.display, branch: options.to, path, name, version, outcome, commit, ...told };
      }
      if (attempt >= 5) throw new RemoteError(`promote: ${options.to} kept moving while airlock merged into it`, { hint: 'run the same command again' });
    }
  } finally {
    await remote.close?.();
    await rm(gitdir, { recursive: true, force: true });
  }
}

/** The one folder of the branch that holds airlock/airlock.json. */
export async function findBundleFolder(gitdir: string, tip: string, remote: GitRemote, branch: string): Promise<string> {
  const { tree } = await git.readTree({ fs, gitdir, oid: tip });
  const found: string[] = [];
  for (const e of tree.filter((t) => t.type === 'tree')) {
    if ((await subtree(gitdir, tip, `${e.path}/airlock/airlock.json`)) !== undefined) found.push(e.path);
  }
  if (found.length === 1) return found[0]!;
  throw new UsageError(
    found.length === 0
      ? `${branch} of ${remote.display} holds no loaded bundle (no */airlock/airlock.json)`
      : `${branch} of ${remote.display} holds several bundles (${found.join(', ')}): choose one with --git-path`,
  );
}

export async function readRelease(gitdir: string, tip: string, path: string, branch: string): Promise<{ name: string; version: string }> {
  try {
    const { blob } = await git.readBlob({ fs, gitdir, oid: tip, filepath: `${path}/airlock/airlock.json` });
    const index = JSON.parse(Buffer.from(blob).toString('utf8')) as { name: string; version: string };
    return { name: index.name, version: index.version };
  } catch {
    throw new UsageError(`${branch} has no ${path}/airlock/airlock.json: nothing loaded there`, { hint: 'check --git-path, or run airlock load --git first' });
  }
}

/** The oid at `filepath` in the commit's tree, or undefined. */
async function subtree(gitdir: string, commit: string, filepath: string): Promise<string | undefined> {
  try {
    const { oid } = await git.readTree({ fs, gitdir, oid: commit, filepath }).catch(async () => {
      const b = await git.readBlob({ fs, gitdir, oid: commit, filepath });
      return { oid: b.oid };
    });
    return oid;
  } catch {
    return undefined;
  }
}

/** The tree of `from` plus PATH/overlays/ENV/kustomization.yaml (resources: [../../base], and components: [airlock] with its own registry). */
async function addStarterOverlay(gitdir: string, fromTip: string, path: string, env: string, ownRegistry: boolean): Promise<string> {
  const starter = Buffer.from(
    [
      `# The ${env} environment: its own patches go here; airlock promote merges new releases of ../../base.`,
      'apiVersion: kustomize.config.k8s.io/v1beta1',
      'kind: Kustomization',
      'resources:',
      '  - ../../base',
      ...(ownRegistry ? ['# The images in its own registry (airlock writes airlock/ at every promote --env-registry).', ...STARTER_COMPONENT_LINES] : []),
      '',
    ].join('\n'),
  );
  const blob = await git.writeBlob({ fs, gitdir, blob: starter });
  const tree = (await git.readCommit({ fs, gitdir, oid: fromTip })).commit.tree;
  return putEntry(gitdir, tree, [...path.split('/').filter(Boolean), 'overlays', ...env.split('/'), 'kustomization.yaml'], { mode: '100644', oid: blob, type: 'blob' });
}

/** Warnings nobody asked for go nowhere. */
const SILENT = { warn: () => undefined };

/**
 * --env-registry, before anything is committed: an existing environment's
 * overlay must list the airlock component (exit 2 otherwise, nothing
 * copied); then everything the environment will receive is copied into its
 * registry, and the component's bytes are rendered.
 */
async function copyEnvironment(
  options: PromoteOptions & { envRegistry: NonNullable<PromoteOptions['envRegistry']> },
  target: { host: string; prefix: string },
  at: { gitdir: string; fromTip: string; toTip: string | undefined; path: string; name: string; version: string },
  sourceClient: (host: string) => RegistryClient,
  transport: HttpTransport,
): Promise<{ report: EnvironmentCopyReport; component: Buffer }> {
  const e = options.envRegistry;
  if (at.toTip) await checkOverlayUsesComponent(at.gitdir, at.toTip, at.path, options.to, e.registry);
  const plan = await planEnvironment(at.gitdir, at.fromTip, at.path, options.from, target);
  const log = options.log ?? SILENT;
  const targetClient = registryClient(target.host, transport, e.access, log);
  const progress = options.progress ?? new Progress({ summaryLine: false });
  let report: EnvironmentCopyReport;
  try {
    report = await copyToEnvironment(plan, { source: sourceClient, target: targetClient }, { jobs: options.jobs, progress, warn: (m) => log.warn(m) });
  } finally {
    progress.done();
  }
  return { report, component: renderComponent(plan, options.to, at, e.access.plainHttp ?? false) };
}

/**
 * The promotion's commit with the airlock component in its tree. A commit of
 * this promote (the merge, or the new environment's first commit) is
 * rewritten with the same parents and message; a fast-forward becomes a
 * merge commit; an environment already up to date gets a commit of its own
 * when only the component changed ('registry mapped'), none when it holds
 * the same bytes.
 */
async function withComponent(
  gitdir: string,
  a: {
    commit: string;
    outcome: PromoteResult['outcome'];
    fromTip: string;
    toTip: string | undefined;
    path: string;
    env: string;
    bytes: Buffer;
    who: { name: string; email: string; timestamp: number; timezoneOffset: number };
    message: string;
  },
): Promise<{ commit: string; outcome: PromoteResult['outcome'] }> {
  const { commit: current } = await git.readCommit({ fs, gitdir, oid: a.commit });
  const tree = await putComponent(gitdir, current.tree, a.path, a.env, a.bytes);
  if (tree === current.tree) return { commit: a.commit, outcome: a.outcome };
  const write = (parent: string[], message: string) => git.writeCommit({ fs, gitdir, commit: { message, tree, parent, author: a.who, committer: a.who } });
  switch (a.outcome) {
    case 'up to date':
      return { commit: await write([a.toTip!], `airlock: ${a.env} pulls its images from its own registry\n\nThe ${a.path}/overlays/${a.env}/airlock component maps every image to the environment registry, same digests.\n`), outcome: 'registry mapped' };
    case 'fast-forward':
      return { commit: await write([a.toTip!, a.fromTip], a.message), outcome: 'merged' };
    default:
      return { commit: await git.writeCommit({ fs, gitdir, commit: { ...current, tree } }), outcome: a.outcome };
  }
}
