import type { Readable } from 'node:stream';
import pLimit from 'p-limit';
import { PolicyError } from '../shared/cli/errors.ts';
import { formatBytes } from '../shared/cli/progress.ts';
import type { BundleRequirement } from '../shared/bundle/delta.ts';
import type { BundleFileSource } from '../shared/bundle/source.ts';
import type { Descriptor } from '../shared/oci/descriptor.ts';
import { internalRepository } from '../shared/oci/mapping.ts';
import { parseReference } from '../shared/oci/reference.ts';
import type { RegistryClient } from '../shared/registry/client.ts';
import type { ContentSource } from '../shared/store/store.ts';

/**
 * Loading a delta bundle: the blobs it requires must already be in the
 * target registry. Before anything is written, each required blob a target
 * repository needs is looked for, by HEAD only: in that repository; else in
 * the repository the bundle names for it (as an enclave path, and mapped
 * under the prefix as images are); else in any other repository of this
 * load; else in any repository under the prefix (the catalog, when the
 * registry allows it). A blob found elsewhere is mounted into the target
 * repository by the push (the registry client remembers where it saw it).
 * Anything still missing refuses the load (exit 5), nothing written.
 */
export interface RequiredBlobsCheck {
  /** Required blobs the load needs: per target repository, present there already. */
  present: number;
  /** ... found in another repository: mounted by the push. */
  mountable: number;
  /** digest -> a repository of the registry that holds it. */
  homes: Map<string, string>;
  /** Each required blob found nowhere, with the target repositories that need it. */
  missing: { digest: string; size: number; repositories: string[] }[];
}

export interface RequiredBlobsOptions {
  client: RegistryClient;
  prefix: string;
  requires: readonly BundleRequirement[];
  /** Target repository -> the blobs its images need (as planned). */
  needs: ReadonlyMap<string, readonly Descriptor[]>;
  jobs: number;
}

export async function checkRequiredBlobs(options: RequiredBlobsOptions): Promise<RequiredBlobsCheck> {
  const { client, prefix } = options;
  const required = new Map(options.requires.map((r) => [r.digest, r]));
  const limit = pLimit(Math.max(1, options.jobs));
  const heads = new Map<string, Promise<boolean>>();
  const holds = (repository: string, desc: Descriptor): Promise<boolean> => {
    const key = `${repository} ${desc.digest}`;
    let found = heads.get(key);
    if (!found) heads.set(key, (found = limit(() => client.blobExists(repository, desc))));
    return found;
  };
  const loadRepositories = [...options.needs.keys()];
  let catalog: Promise<string[]> | undefined;
  const prefixRepositories = () => (catalog ??= client.catalog().then((all) => (all ?? []).filter((r) => prefix === '' || r.startsWith(`${prefix}/`))));
  const homes = new Map<string, string>();

  const findHome = async (repository: string, desc: Descriptor, hint: string): Promise<string | undefined> => {
    const known = homes.get(desc.digest);
    const candidates = unique([...(known ? [known] : []), ...hintRepositories(hint, prefix), ...loadRepositories]).filter((r) => r !== repository);
    for (const c of candidates) if (await holds(c, desc)) return c;
    // The catalog last: one listing, then HEADs in the repositories not tried yet.
    for (const c of (await prefixRepositories()).filter((r) => r !== repository && !candidates.includes(r))) if (await holds(c, desc)) return c;
    return undefined;
  };

  const result: RequiredBlobsCheck = { present: 0, mountable: 0, homes, missing: [] };
  const missing = new Map<string, { digest: string; size: number; repositories: string[] }>();
  const work: Promise<void>[] = [];
  for (const [repository, blobs] of options.needs) {
    for (const b of blobs) {
      const r = required.get(b.digest);
      if (!r) continue;
      const desc: Descriptor = { ...b, size: r.size };
      work.push(
        (async () => {
          if (await holds(repository, desc)) {
            result.present++;
            return;
          }
          const home = await findHome(repository, desc, r.repository);
          if (home === undefined) {
            const m = missing.get(r.digest) ?? { digest: r.digest, size: r.size, repositories: [] };
            m.repositories.push(repository);
            missing.set(r.digest, m);
          } else {
            homes.set(desc.digest, home);
            result.mountable++;
          }
        })(),
      );
    }
  }
  await Promise.all(work);
  for (const m of missing.values()) m.repositories.sort();
  result.missing = [...missing.values()].sort((a, b) => a.repositories[0]!.localeCompare(b.repositories[0]!) || a.digest.localeCompare(b.digest));
  return result;
}

/** The bundle's mount hint as repositories of this registry: as an enclave path, and as a source repository mapped under the prefix. */
function hintRepositories(hint: string, prefix: string): string[] {
  const out = [hint];
  try {
    out.push(internalRepository(parseReference(hint), prefix));
  } catch {
    // Not a reference: the enclave path alone.
  }
  return out;
}

function unique(list: string[]): string[] {
  return [...new Set(list)];
}

const LISTED = 20;

/** Exit 5 naming the first blobs the registry lacks and how many there are; nothing was written. */
export function missingBlobsError(check: RequiredBlobsCheck, registry: string, since: string): PolicyError {
  const { missing } = check;
  const bytes = missing.reduce((a, m) => a + m.size, 0);
  const lines = missing.slice(0, LISTED).map((m) => `  ${m.digest} (${formatBytes(m.size)}) for ${m.repositories.join(', ')}`);
  if (missing.length > LISTED) lines.push(`  ... and ${missing.length - LISTED} more`);
  return new PolicyError(
    `this delta bundle${since} relies on ${missing.length} blob${missing.length === 1 ? '' : 's'} (${formatBytes(bytes)}) that ${registry} does not hold in any repository; nothing was written:\n${lines.join('\n')}`,
    { hint: 'load the release it was made against first, or ask for a full bundle (or a delta against an inventory of this registry: airlock inventory)' },
  );
}

/**
 * The bundle's content, and for a required blob (not in the bundle) its bytes
 * from the repository of the registry that holds it: used only when the
 * registry declines to mount it, so the push copies it inside the registry.
 */
export class DeltaSource implements ContentSource {
  constructor(
    private readonly bundle: BundleFileSource,
    private readonly client: RegistryClient,
    private readonly homes: ReadonlyMap<string, string>,
  ) {}

  exists(desc: Descriptor): Promise<boolean> {
    return this.bundle.exists(desc);
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    const home = this.homes.get(desc.digest);
    if (home !== undefined && !(await this.bundle.exists(desc))) return this.client.fetchBlob(home, desc);
    return this.bundle.fetch(desc);
  }
}

/** What the load report says about a delta: what it relied on and where the registry had it. */
export interface DeltaLoadReport {
  requires: number;
  bytes: number;
  since?: { name: string; version: string };
  /** Required blobs the load needed, per target repository: already there. */
  present: number;
  /** ... found in another repository of the registry: mounted. */
  mountable: number;
}

/**
 * Check a delta against the target registry (nothing written) and give the
 * source the push reads from. Exit 5 when the registry lacks a required blob.
 */
export async function prepareDeltaLoad(
  index: { requires?: BundleRequirement[]; since?: { name: string; version: string } },
  bundle: BundleFileSource,
  plans: Iterable<[{ repository: string }, { blobs: Descriptor[] }]>,
  options: { client: RegistryClient; prefix: string; registry: string; jobs: number },
): Promise<{ source: ContentSource; report?: DeltaLoadReport; required: ReadonlySet<string> }> {
  const requires = index.requires;
  if (requires === undefined) return { source: bundle, required: new Set() };
  const needs = new Map<string, Descriptor[]>();
  for (const [t, plan] of plans) needs.set(t.repository, [...(needs.get(t.repository) ?? []), ...plan.blobs]);
  const check = await checkRequiredBlobs({ client: options.client, prefix: options.prefix, requires, needs, jobs: options.jobs });
  const since = index.since ? ` (made against ${index.since.name} ${index.since.version})` : '';
  if (check.missing.length > 0) throw missingBlobsError(check, options.registry, since);
  return {
    source: new DeltaSource(bundle, options.client, check.homes),
    // Found in the registry: a dry run does not count them as blobs to push.
    required: new Set(requires.map((r) => r.digest)),
    report: {
      requires: requires.length,
      bytes: requires.reduce((a, r) => a + r.size, 0),
      ...(index.since ? { since: index.since } : {}),
      present: check.present,
      mountable: check.mountable,
    },
  };
}
