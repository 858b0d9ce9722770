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
import { CatalogRefusedError, listRepositories } from '../shared/registry/catalog.ts';
import type { ContentSource } from '../shared/store/store.ts';

/**
 * Loading a delta bundle: the blobs it requires must already be in the
 * target registry. Before anything is written, each required blob a target
 * repository needs is looked for, by HEAD only: in that repository; else in
 * the repository the bundle names for it (as an enclave path, and mapped
 * under the prefix as images are); else in any other repository of this
 * load; else in any repository under the prefix (the catalog, when the
 * registry allows it); the last two only when at most WIDE_SEARCH_LIMIT
 * blobs are left to find. A blob found elsewhere is mounted into the target
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
  /** False when so many were missing near their hints that the other repositories were not searched. */
  wideSearch: boolean;
}

export interface RequiredBlobsOptions {
  client: RegistryClient;
  prefix: string;
  requires: readonly BundleRequirement[];
  /** Target repository -> the blobs its images need (as planned). */
  needs: ReadonlyMap<string, readonly Descriptor[]>;
  jobs: number;
}

/**
 * Past this many blobs still missing after the near places (the target
 * repository, the hint, a repository already found), the base is plainly not
 * in this registry: the wide search (every repository of the load and of the
 * catalog, one HEAD each per blob) is skipped rather than sent by the thousand.
 */
export const WIDE_SEARCH_LIMIT = 64;

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
  const firstHolder = async (candidates: string[], desc: Descriptor): Promise<string | undefined> => {
    for (const c of candidates) if (await holds(c, desc)) return c;
    return undefined;
  };
  const homes = new Map<string, string>();
  const result: RequiredBlobsCheck = { present: 0, mountable: 0, homes, missing: [], wideSearch: true };

  // 1. Each (target repository, required blob) the load needs: there already, or in the repository the hint names.
  const needed = neededPairs(options.needs, required);
  const unresolved: NeededBlob[] = [];
  await Promise.all(
    needed.map(async (n) => {
      if (await holds(n.repository, n.desc)) {
        result.present++;
        return;
      }
      const home = await firstHolder(hintRepositories(n.hint, prefix).filter((r) => r !== n.repository), n.desc);
      if (home === undefined) unresolved.push(n);
      else homes.set(n.desc.digest, home);
    }),
  );

  // 2. The rest: a holder found for another repository, else any repository of this load, else of the prefix (the catalog).
  const digestsLeft = new Set(unresolved.filter((n) => !homes.has(n.desc.digest)).map((n) => n.desc.digest));
  result.wideSearch = digestsLeft.size <= WIDE_SEARCH_LIMIT;
  const wide = result.wideSearch ? await wideCandidates(client, prefix, [...options.needs.keys()]) : [];
  const missing = new Map<string, { digest: string; size: number; repositories: string[] }>();
  await Promise.all(
    unresolved.map(async (n) => {
      const known = homes.get(n.desc.digest);
      const home = known ?? (await firstHolder(wide.filter((r) => r !== n.repository), n.desc));
      if (home !== undefined) {
        homes.set(n.desc.digest, home);
        return;
      }
      const m = missing.get(n.desc.digest) ?? { digest: n.desc.digest, size: n.desc.size, repositories: [] };
      m.repositories.push(n.repository);
      missing.set(n.desc.digest, m);
    }),
  );
  result.mountable = needed.length - result.present - [...missing.values()].reduce((a, m) => a + m.repositories.length, 0);
  for (const m of missing.values()) m.repositories.sort();
  result.missing = [...missing.values()].sort((a, b) => a.repositories[0]!.localeCompare(b.repositories[0]!) || a.digest.localeCompare(b.digest));
  return result;
}

interface NeededBlob {
  repository: string;
  desc: Descriptor;
  hint: string;
}

/** Every (target repository, required blob) pair the plans need, once each. */
function neededPairs(needs: ReadonlyMap<string, readonly Descriptor[]>, required: ReadonlyMap<string, BundleRequirement>): NeededBlob[] {
  const out: NeededBlob[] = [];
  for (const [repository, blobs] of needs) {
    const seen = new Set<string>();
    for (const b of blobs) {
      const r = required.get(b.digest);
      if (!r || seen.has(b.digest)) continue;
      seen.add(b.digest);
      out.push({ repository, desc: { ...b, size: r.size }, hint: r.repository });
    }
  }
  return out;
}

/** The repositories of this load, then those under the prefix the catalog lists (none when the registry refuses it). */
async function wideCandidates(client: RegistryClient, prefix: string, loadRepositories: string[]): Promise<string[]> {
  let listed: string[] = [];
  try {
    listed = await listRepositories(client, prefix);
  } catch (err) {
    if (!(err instanceof CatalogRefusedError)) throw err;
  }
  return unique([...loadRepositories, ...listed.filter((r) => prefix === '' || r.startsWith(`${prefix}/`))]);
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
  if (!check.wideSearch) lines.push(`  (over ${WIDE_SEARCH_LIMIT} were missing where the bundle said they would be, so the registry's other repositories were not searched)`);
  return new PolicyError(
    `this delta bundle${since} relies on ${missing.length} blob${missing.length === 1 ? '' : 's'} (${formatBytes(bytes)}) that ${registry} does not hold${check.wideSearch ? ' in any repository' : ''}; nothing was written:\n${lines.join('\n')}`,
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
