import fs from 'node:fs';
import git from 'isomorphic-git';
import pLimit, { type LimitFunction } from 'p-limit';
import { PolicyError, UsageError } from '../../shared/cli/errors.ts';
import { Progress, progressListener } from '../../shared/cli/progress.ts';
import { CopySession, copyGraph, type CopyEvent } from '../../shared/copy.ts';
import type { Descriptor } from '../../shared/oci/descriptor.ts';
import type { RegistryClient } from '../../shared/registry/client.ts';
import { RemoteStore } from '../../shared/store/remote.ts';
import { fluxObjects, pinnedImages, type FluxObjects } from './pinned.ts';

/**
 * promote --env-registry: an environment that pulls from its own registry.
 * Everything the environment will receive (the images dev's base and its
 * HelmReleases pin, and the charts its OCIRepositories pin) is copied from
 * the registry dev pins into the environment's, registry to registry, by
 * digest: the digests never change, so the environment runs exactly what
 * was loaded, approved and reviewed.
 *
 * Names: the repository path under the enclave registry's prefix is kept,
 * under the environment registry's prefix instead:
 * REG/PREFIX/harness/ng-manager -> ENVREG/ENVPREFIX/harness/ng-manager.
 */
export interface RegistryTarget {
  host: string;
  prefix: string;
}

/** One root manifest to copy: an image's, or a chart artifact's. */
export interface EnvironmentCopy {
  kind: 'image' | 'chart';
  /** The name dev pins: HOST/REPOSITORY. */
  from: string;
  /** Its name in the environment registry: ENVHOST/REPOSITORY. */
  to: string;
  digest: string;
  /** The tag load gave it (a version tag, for people and for helm pull), set in the environment registry too. */
  tag?: string;
}

export interface EnvironmentPlan {
  registry: RegistryTarget;
  /** The registry dev pins (load's --registry), as load-report.json records it. */
  source: RegistryTarget;
  copies: EnvironmentCopy[];
  /** The Flux objects of dev's base, whose pins the environment's component patches. */
  releases: FluxObjects[];
}

export interface EnvironmentCopyReport {
  /** HOST[/PREFIX] of the environment registry. */
  registry: string;
  images: number;
  charts: number;
  /** Roots that were not there yet (the others were present and skipped). */
  copied: number;
  present: number;
  /** Cosign signatures, attestations and SBOMs (sha256-<hex>.sig/.att/.sbom tags) copied or moved to the source's. */
  signatures: number;
  blobsUploaded: number;
  blobsMounted: number;
  blobsPresent: number;
  bytesUploaded: number;
}

/** `to` is a name in the environment registry: the path under the source prefix, under the environment's prefix. */
export function environmentName(from: string, source: RegistryTarget, registry: RegistryTarget): string {
  const repository = from.slice(from.indexOf('/') + 1);
  const under = source.prefix && repository.startsWith(`${source.prefix}/`) ? repository.slice(source.prefix.length + 1) : repository;
  return `${registry.host}/${registry.prefix ? `${registry.prefix}/` : ''}${under}`;
}

/** What the environment will receive from `commit` (dev's tip), with the names it gets in `registry`. */
export async function planEnvironment(gitdir: string, commit: string, path: string, branch: string, registry: RegistryTarget): Promise<EnvironmentPlan> {
  const report = await loadReport(gitdir, commit, path);
  const pins = await pinnedImages(gitdir, commit, path, branch);
  const source = report.registry ?? { host: pins[0]?.newName.split('/')[0] ?? '', prefix: '' };
  if (source.host === registry.host && source.prefix === registry.prefix) {
    throw new UsageError(`--env-registry ${describeTarget(registry)} is the registry ${branch} already pins to: nothing to copy`, {
      hint: "drop --env-registry, or give the environment's own registry",
    });
  }
  const releases = await fluxObjects(gitdir, commit, path);
  const copies: EnvironmentCopy[] = pins.map((p) => ({ kind: 'image', from: p.newName, to: environmentName(p.newName, source, registry), digest: p.digest, ...tagOf(report.images, p.newName, p.digest) }));
  for (const { ociRepository } of releases) {
    const spec = (ociRepository?.spec ?? {}) as { url?: unknown; ref?: { digest?: unknown } };
    if (typeof spec.url !== 'string' || !spec.url.startsWith('oci://') || typeof spec.ref?.digest !== 'string') continue;
    const from = spec.url.slice('oci://'.length);
    copies.push({ kind: 'chart', from, to: environmentName(from, source, registry), digest: spec.ref.digest, ...tagOf(report.charts, from, spec.ref.digest) });
  }
  return { registry, source, copies, releases };
}

export function describeTarget(t: RegistryTarget): string {
  return t.prefix ? `${t.host}/${t.prefix}` : t.host;
}

/**
 * Copy every root of the plan that the environment registry lacks, under one
 * concurrency limit: present manifests are skipped with their whole graph,
 * a blob two repositories share is uploaded once and mounted into the other.
 * A tag that points elsewhere in the environment registry refuses the whole
 * copy before anything moves (PolicyError).
 */
export async function copyToEnvironment(
  plan: EnvironmentPlan,
  clients: { source: (host: string) => RegistryClient; target: RegistryClient },
  options: { jobs?: number; progress: Progress; warn: (message: string) => void },
): Promise<EnvironmentCopyReport> {
  const report: EnvironmentCopyReport = {
    registry: describeTarget(plan.registry),
    images: plan.copies.filter((c) => c.kind === 'image').length,
    charts: plan.copies.filter((c) => c.kind === 'chart').length,
    copied: 0,
    present: 0,
    signatures: 0,
    blobsUploaded: 0,
    blobsMounted: 0,
    blobsPresent: 0,
    bytesUploaded: 0,
  };
  const targetStore = (name: string) => new RemoteStore(clients.target, name.slice(name.indexOf('/') + 1));
  const tagged = await checkTags(plan.copies, targetStore, pLimit(options.jobs ?? 8));

  const { progress } = options;
  progress.phase('copy', { items: plan.copies.length });
  const advance = progressListener(progress);
  const counted = new Set<string>();
  const written = new Set<string>();
  const session = new CopySession({
    concurrency: options.jobs ?? 8,
    onEvent: (e: CopyEvent) => {
      if (e.type === 'blob-start' || e.type === 'blob-skip' || e.type === 'blob-mount') {
        const key = `${e.destination} ${e.descriptor.digest}`;
        if (!counted.has(key)) progress.addTotal(e.descriptor.size);
        counted.add(key);
      }
      advance(e);
      if (e.type === 'blob-done') {
        report.blobsUploaded++;
        report.bytesUploaded += e.bytes;
      } else if (e.type === 'blob-mount') report.blobsMounted++;
      else if (e.type === 'blob-skip') report.blobsPresent++;
      else if (e.type === 'manifest-done' && !e.skipped) written.add(`${e.destination} ${e.descriptor.digest}`);
      else if (e.type === 'retry') options.warn(`retrying ${e.descriptor.digest} to ${e.destination} (attempt ${e.attempt}): ${e.reason}`);
    },
  });
  await session.all(plan.copies, async (c) => {
    const slash = c.from.indexOf('/');
    const source = new RemoteStore(clients.source(c.from.slice(0, slash)), c.from.slice(slash + 1));
    const target = targetStore(c.to);
    const root: Descriptor = await session.limit(() => source.resolve(c.digest));
    await copyGraph(source, target, root, { session });
    if (c.tag && !tagged.has(c)) await session.limit(() => target.tag(root, c.tag!));
    if (written.has(`${target.name} ${c.digest}`)) report.copied++;
    else report.present++;
    if (c.kind === 'image') report.signatures += await copySignatures(session, source, target, c.digest);
    progress.advance(0, 1);
  });
  return report;
}

/** The tag suffixes of what cosign attaches to an image: signatures (approve writes them), attestations, SBOMs. */
const ATTACHED = ['sig', 'att', 'sbom'] as const;

/**
 * Whatever cosign attached to the image in the source repository, copied
 * next to it with its tag (sha256-<hex>.sig ...), so that the environment's
 * admission policy finds the approver's signature in the environment
 * registry. The source holds every approval, so its tag wins. The number of
 * tags set.
 */
async function copySignatures(session: CopySession, source: RemoteStore, target: RemoteStore, digest: string): Promise<number> {
  let set = 0;
  for (const suffix of ATTACHED) {
    const tag = `${digest.replace(':', '-')}.${suffix}`;
    const attached = await session.limit(() => source.client.resolve(source.repository, tag));
    if (!attached) continue;
    const current = await session.limit(() => target.client.resolve(target.repository, tag));
    if (current?.digest === attached.digest) continue;
    await copyGraph(source, target, attached, { session });
    await session.limit(() => target.tag(attached, tag));
    set++;
  }
  return set;
}

/** The copies whose tag already points at their digest; a tag that points elsewhere is a PolicyError naming each. */
async function checkTags(copies: readonly EnvironmentCopy[], storeFor: (name: string) => RemoteStore, limit: LimitFunction): Promise<Set<EnvironmentCopy>> {
  const tagged = new Set<EnvironmentCopy>();
  const elsewhere: string[] = [];
  await Promise.all(
    copies
      .filter((c) => c.tag)
      .map(async (c) => {
        const store = storeFor(c.to);
        const current = await limit(() => store.client.resolve(store.repository, c.tag!));
        if (current === undefined) return;
        if (current.digest === c.digest) tagged.add(c);
        else elsewhere.push(`${c.to}:${c.tag} is ${current.digest}, not ${c.digest}`);
      }),
  );
  if (elsewhere.length > 0) {
    throw new PolicyError(`the environment registry already has tags that point at other content: ${elsewhere.sort().join('; ')}; nothing was copied or committed`, {
      hint: 'tags in the environment registry are moved by airlock only from what dev pins: find out who pushed these, or give another --env-registry prefix',
    });
  }
  return tagged;
}

interface LoadRecord {
  registry?: RegistryTarget;
  images: { target: string; digest: string }[];
  charts: { target: string; digest: string }[];
}

/** PATH/airlock/load-report.json: the registry load pushed to, and the tagged names it gave each image and chart. */
async function loadReport(gitdir: string, commit: string, path: string): Promise<LoadRecord> {
  let value: { registry?: unknown; images?: unknown; charts?: unknown } = {};
  try {
    const { blob } = await git.readBlob({ fs, gitdir, oid: commit, filepath: `${path}/airlock/load-report.json` });
    value = (JSON.parse(Buffer.from(blob).toString('utf8')) as typeof value | null) ?? {};
  } catch {
    // An older load without the report: the pins alone still say where the images are.
  }
  const entries = (v: unknown) =>
    (Array.isArray(v) ? v : []).filter((e): e is { target: string; digest: string } => typeof e?.target === 'string' && typeof e?.digest === 'string');
  let registry: RegistryTarget | undefined;
  if (typeof value.registry === 'string') {
    const [host, ...rest] = value.registry.replace(/\/+$/, '').split('/');
    registry = { host: host!, prefix: rest.join('/') };
  }
  return { ...(registry ? { registry } : {}), images: entries(value.images), charts: entries(value.charts) };
}

/** The tag load gave `name@digest` (a target "NAME:TAG" with that digest), if any. */
function tagOf(records: readonly { target: string; digest: string }[], name: string, digest: string): { tag?: string } {
  const found = records.find((r) => r.digest === digest && r.target.startsWith(`${name}:`) && !r.target.slice(name.length + 1).includes('/'));
  return found ? { tag: found.target.slice(name.length + 1) } : {};
}
