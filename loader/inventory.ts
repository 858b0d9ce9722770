import pLimit, { type LimitFunction } from 'p-limit';
import { UsageError, VerificationError } from '../shared/cli/errors.ts';
import type { Logger } from '../shared/cli/log.ts';
import { formatBytes, Progress } from '../shared/cli/progress.ts';
import { INVENTORY_FORMAT_VERSION, writeInventory, type Inventory, type InventorySource } from '../shared/inventory/format.ts';
import type { Descriptor } from '../shared/oci/descriptor.ts';
import { childrenOf, parseManifest, type ParsedManifest } from '../shared/oci/mediatype.ts';
import { listAllTags, listRepositories } from '../shared/registry/catalog.ts';
import { registryClient, summarizedTransport, type RegistryAccess } from '../shared/registry/access.ts';
import { RegistryClient, RegistryHttpError } from '../shared/registry/client.ts';
import { readLoadedContent, type GitSource, type LoadedItem } from './gitops/loadedImages.ts';
import { parseRegistryTarget } from './load.ts';

/**
 * airlock inventory: what the enclave registry holds, by digest, for
 * `pack --since` (the file: shared/inventory/format.ts, docs/inventory.md).
 *
 * 1. What to walk: every repository under the prefix (the catalog, paged) and
 *    every tag of each (paged); or, with --from-git, the images and charts
 *    the bundle last loaded into that branch names, each checked by digest.
 * 2. The walk: each tag's manifest fetched by the tag (one request, which
 *    names its digest); a digest seen before is not walked again, and every
 *    manifest reached by digest (an index's children) is fetched once:
 *    indexes -> child manifests -> config and layer descriptors, a bounded
 *    number of requests at a time. No blob is read: sizes come from the
 *    descriptors.
 * 3. The file written atomically; the summary returned.
 */
export interface InventoryOptions {
  /** HOST[:PORT][/PREFIX] */
  registry: string;
  output: string;
  /** Credentials, plain HTTP, client certificate. */
  access: RegistryAccess;
  caFile?: string;
  jobs?: number;
  /** Entries per page of the catalog and tag listings. */
  pageSize?: number;
  /** Build the inventory from the bundle last loaded into this git branch instead of the catalog. */
  fromGit?: GitSource;
  json?: boolean;
  logger: Logger;
}

export interface InventorySummary {
  registry: string;
  output: string;
  source: InventorySource;
  repositories: number;
  tags: number;
  manifests: number;
  blobs: number;
  /** Sum of the blobs' sizes. */
  bytes: number;
  seconds: number;
  /** Repositories this identity may not read (left out). */
  unreadable: string[];
  /** --from-git: loaded images the registry no longer holds (left out), as REPOSITORY@DIGEST. */
  missing: string[];
  /** --from-git: the bundle the images come from. */
  bundle?: { name: string; version: string; git: string; branch: string; path: string };
}

export async function takeInventory(options: InventoryOptions): Promise<InventorySummary> {
  const started = performance.now();
  const { logger } = options;
  const target = parseRegistryTarget(options.registry);
  const progress = new Progress({ json: options.json, summaryLine: false });
  logger.attachStatusLine(progress);
  const net = summarizedTransport(options.caFile, logger);
  const { transport } = net;
  const client = registryClient(target.host, transport, options.access, logger);
  const walk = new RegistryWalk(client, pLimit(options.jobs ?? 8), progress, logger);
  try {
    let bundle: InventorySummary['bundle'];
    let missing: string[] = [];
    if (options.fromGit) {
      progress.phase('git');
      const loaded = await readLoadedContent(options.fromGit, transport);
      bundle = { name: loaded.name, version: loaded.version, git: loaded.url, branch: loaded.branch, path: loaded.path };
      const items = itemsInRegistry(loaded.items, target, loaded.registry, options.registry);
      progress.phase('walk', { items: items.length });
      missing = await walk.loadedItems(items);
    } else {
      progress.phase('catalog');
      const repositories = await listRepositories(client, target.prefix, { pageSize: options.pageSize });
      progress.phase('walk', { items: repositories.length });
      await walk.repositories(repositories, options.pageSize);
    }
    const inventory = walk.inventory(options.registry, options.fromGit ? 'git' : 'catalog');
    await writeInventory(options.output, inventory);
    progress.done();
    return {
      registry: options.registry,
      output: options.output,
      source: inventory.source,
      repositories: inventory.repositories.length,
      tags: Object.values(inventory.tags).reduce((n, t) => n + Object.keys(t).length, 0),
      manifests: Object.keys(inventory.manifests).length,
      blobs: Object.keys(inventory.blobs).length,
      bytes: Object.values(inventory.blobs).reduce((n, [size]) => n + size, 0),
      seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
      unreadable: walk.unreadable.sort(),
      missing,
      ...(bundle ? { bundle } : {}),
    };
  } catch (err) {
    progress.done();
    throw err;
  } finally {
    logger.attachStatusLine(undefined);
    await net.close();
  }
}

/** The loaded items that live in the registry inventoried (host and prefix); none is a usage error. */
function itemsInRegistry(items: LoadedItem[], target: { host: string; prefix: string }, loadedInto: string, given: string): LoadedItem[] {
  const under = (repository: string) => target.prefix === '' || repository === target.prefix || repository.startsWith(`${target.prefix}/`);
  const inside = items.filter((i) => i.host.toLowerCase() === target.host.toLowerCase() && under(i.repository));
  if (items.length > 0 && inside.length === 0) {
    throw new UsageError(`the bundle in git was loaded into ${loadedInto}, none of its images is under --registry ${given}`, {
      hint: `give --registry ${loadedInto}`,
    });
  }
  return inside;
}

interface FetchedManifest {
  repository: string;
  descriptor: Descriptor;
  parsed: ParsedManifest;
}

/** The walk of one registry: what it holds, gathered as the manifests are read. */
class RegistryWalk {
  private readonly tags = new Map<string, Map<string, string>>();
  /** Manifest digest -> the repository it was first found in. */
  private readonly manifests = new Map<string, string>();
  /** Blob digest -> size and the repository it was first found in. */
  private readonly blobs = new Map<string, { size: number; repository: string }>();
  /** Manifests being walked or walked: each is fetched once, also when two walks reach it at the same time. */
  private readonly walks = new Map<string, Promise<boolean>>();
  private readonly listed = new Set<string>();
  readonly unreadable: string[] = [];

  constructor(
    private readonly client: RegistryClient,
    /** Bounds the requests in flight (not the walks, which wait for their children). */
    private readonly limit: LimitFunction,
    private readonly progress: Progress,
    private readonly logger: Logger,
  ) {}

  /** Catalog mode: every tag of every repository. */
  async repositories(repositories: string[], pageSize: number | undefined): Promise<void> {
    await Promise.all(
      repositories.map(async (repository) => {
        this.listed.add(repository);
        const tags = await this.readable(repository, () => this.limit(() => listAllTags(this.client, repository, { pageSize })));
        this.progress.addTotal(0, tags?.length ?? 0);
        await Promise.all(
          (tags ?? []).map(async (tag) => {
            await this.tag(repository, tag);
            this.progress.advance(0, 1);
          }),
        );
        this.progress.advance(0, 1);
      }),
    );
  }

  /** --from-git mode: each loaded image by its digest, and its tag where it still has one. Returns what is missing. */
  async loadedItems(items: LoadedItem[]): Promise<string[]> {
    const missing: string[] = [];
    await Promise.all(
      items.map(async (item) => {
        const found = await this.readable(item.repository, () => this.manifest(item.repository, item.digest));
        if (!found) {
          missing.push(`${item.repository}@${item.digest}`);
          this.logger.warn(`${this.client.display(item.repository)}@${item.digest} (${item.source}): not in the registry; left out of the inventory`);
        } else {
          this.listed.add(item.repository);
          if (item.tag !== undefined) await this.readable(item.repository, () => this.tag(item.repository, item.tag!));
        }
        this.progress.advance(0, 1);
      }),
    );
    return missing.sort();
  }

  /**
   * A tag: its manifest, fetched by the tag (one request: the digest comes
   * with the bytes), then walked unless another tag or index reached it first.
   */
  private async tag(repository: string, tag: string): Promise<void> {
    const fetched = await this.limit(() => this.fetch(repository, tag));
    // Deleted since it was listed, or not readable: the tag is left out with its manifest.
    if (fetched === undefined) return;
    const { digest } = fetched.descriptor;
    if (!(await this.manifest(repository, digest, fetched))) return;
    let tags = this.tags.get(repository);
    if (!tags) this.tags.set(repository, (tags = new Map()));
    tags.set(tag, digest);
  }

  /** Walk a manifest or index once; false when the registry does not have it (or it cannot be read). */
  private manifest(repository: string, digest: string, fetched?: FetchedManifest): Promise<boolean> {
    let walk = this.walks.get(digest);
    if (!walk) {
      walk = this.readManifest(repository, digest, fetched);
      this.walks.set(digest, walk);
    }
    return walk;
  }

  private async readManifest(repository: string, digest: string, prefetched: FetchedManifest | undefined): Promise<boolean> {
    const fetched = prefetched ?? (await this.limit(() => this.fetch(repository, digest)));
    if (fetched === undefined) return false;
    this.manifests.set(digest, fetched.repository);
    if (fetched.parsed.index) {
      const children = childrenOf(fetched.parsed);
      const present = await Promise.all(children.map((child) => this.manifest(repository, child.digest)));
      // A sparse index (some platforms left out on purpose) is legal: say so, do not fail.
      const absent = present.filter((p) => !p).length;
      if (absent > 0) this.logger.debug(`${this.client.display(repository)}@${digest}: ${absent} of its ${children.length} manifests are not in the repository`);
    } else {
      for (const blob of childrenOf(fetched.parsed)) if (!this.blobs.has(blob.digest)) this.blobs.set(blob.digest, { size: blob.size, repository });
    }
    return true;
  }

  /** GET a manifest by tag or digest; undefined when absent, or unreadable (warned: an inventory that lists less only makes a delta carry more). */
  private async fetch(repository: string, reference: string): Promise<FetchedManifest | undefined> {
    try {
      const fetched = await this.client.getManifest(repository, reference);
      if (fetched === undefined) return undefined;
      const parsed = parseManifest(fetched.bytes, fetched.descriptor.mediaType, `${this.client.display(repository)}@${fetched.descriptor.digest}`);
      return { repository, descriptor: fetched.descriptor, parsed };
    } catch (err) {
      if (!(err instanceof VerificationError)) throw err;
      this.logger.warn(`${err.message}; left out of the inventory`);
      return undefined;
    }
  }

  /** Run a read of one repository; a repository this identity may not read is noted and left out. */
  private async readable<T>(repository: string, read: () => Promise<T>): Promise<T | undefined> {
    try {
      return await read();
    } catch (err) {
      if (err instanceof RegistryHttpError && (err.status === 401 || err.status === 403)) {
        if (!this.unreadable.includes(repository)) {
          this.unreadable.push(repository);
          this.logger.warn(`${this.client.display(repository)}: not readable with these credentials (HTTP ${err.status}); left out of the inventory`);
        }
        return undefined;
      }
      throw err;
    }
  }

  inventory(registry: string, source: InventorySource): Inventory {
    const holders = new Set([...this.listed, ...this.tags.keys(), ...this.manifests.values(), ...[...this.blobs.values()].map((b) => b.repository)]);
    for (const r of this.unreadable) holders.delete(r);
    const repositories = [...holders].sort();
    const index = new Map(repositories.map((r, i) => [r, i]));
    const at = (repository: string): number => {
      const i = index.get(repository);
      if (i === undefined) throw new Error(`${repository} is not among the inventoried repositories`);
      return i;
    };
    return {
      airlockInventory: INVENTORY_FORMAT_VERSION,
      registry,
      created: new Date().toISOString(),
      source,
      repositories,
      tags: Object.fromEntries([...this.tags].map(([repository, tags]) => [repository, Object.fromEntries(tags)])),
      manifests: Object.fromEntries([...this.manifests].map(([digest, repository]) => [digest, at(repository)])),
      blobs: Object.fromEntries([...this.blobs].map(([digest, b]) => [digest, [b.size, at(b.repository)]])),
    };
  }
}

/** The one-line human summary. */
export function formatInventorySummary(s: InventorySummary): string {
  const lines = [
    `inventory of ${s.registry} (${s.source === 'git' ? `the images of ${s.bundle?.name} ${s.bundle?.version} loaded into ${s.bundle?.git} ${s.bundle?.branch}` : 'catalog'}): ` +
      `${s.repositories} repositories, ${s.tags} tags, ${s.manifests} manifests, ${s.blobs} blobs, ${formatBytes(s.bytes)} -> ${s.output} (${s.seconds.toFixed(1)} s)`,
  ];
  if (s.unreadable.length > 0) lines.push(`  ${s.unreadable.length} repositories not readable with these credentials, left out: ${s.unreadable.slice(0, 20).join(', ')}${s.unreadable.length > 20 ? ', ...' : ''}`);
  if (s.missing.length > 0) lines.push(`  ${s.missing.length} loaded images no longer in the registry, left out: ${s.missing.slice(0, 20).join(', ')}${s.missing.length > 20 ? ', ...' : ''}`);
  return lines.join('\n');
}
