import pLimit from 'p-limit';
import { RemoteError } from '../cli/errors.ts';
import { isIndex } from '../oci/mediatype.ts';
import type { RegistryClient } from './client.ts';
import { header, type HttpResponse } from './transport.ts';

/**
 * Registry pull quotas, as Docker Hub announces them: every answer to a
 * manifest request carries `ratelimit-limit: 100;w=21600` (100 pulls per
 * 21600 s) and `ratelimit-remaining: 76;w=21600`; each manifest GET counts as
 * a pull, HEAD requests do not. RegistryClient feeds a tracker with what it
 * sees; the packer asks, before the first layer, whether the manifest GETs it
 * still has to make fit in what remains (checkPullBudget).
 */
export interface PullQuota {
  limit: number;
  remaining: number;
  /** Window of the limit in seconds, when announced. */
  windowSeconds?: number;
}

/** "100;w=21600" -> { count: 100, windowSeconds: 21600 }; undefined when unreadable. */
export function parseRateLimitValue(value: string | undefined): { count: number; windowSeconds?: number } | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*(\d+)\s*(?:;(.*))?$/.exec(value.split(',')[0]!);
  if (!m) return undefined;
  const w = /(?:^|;)\s*w\s*=\s*(\d+)/.exec(m[2] ?? '');
  return { count: Number(m[1]), ...(w ? { windowSeconds: Number(w[1]) } : {}) };
}

export class RateLimitTracker {
  private readonly quotas = new Map<string, PullQuota>();

  /** Remember the quota a response announces (a registry that announces none is left alone). */
  observe(registry: string, res: Pick<HttpResponse, 'headers'>): void {
    const limit = parseRateLimitValue(header(res as HttpResponse, 'ratelimit-limit'));
    const remaining = parseRateLimitValue(header(res as HttpResponse, 'ratelimit-remaining'));
    if (!limit || !remaining) return;
    const windowSeconds = remaining.windowSeconds ?? limit.windowSeconds;
    this.quotas.set(registry, { limit: limit.count, remaining: remaining.count, ...(windowSeconds ? { windowSeconds } : {}) });
  }

  /** The latest quota seen for a registry, undefined when it announced none. */
  quota(registry: string): PullQuota | undefined {
    return this.quotas.get(registry);
  }
}

/** One image the pack still has to read: its registry client and reference. */
export interface PlannedPull {
  client: RegistryClient;
  repository: string;
  /** Tag or digest. */
  reference: string;
}

export interface PullBudgetOptions {
  tracker: RateLimitTracker;
  /** Platforms the pack keeps (0: all): an index costs one GET more per platform kept. */
  platforms: number;
  /** HEAD requests at once (default 8). */
  concurrency?: number;
}

/**
 * Before any manifest GET: for each registry that announces a pull quota
 * (seen on a HEAD of its first image, which does not count), HEAD every image
 * to learn what it is, count the manifest GETs the plan will make (one per
 * image, plus one per platform kept for an index) and refuse, with the
 * numbers and what to do, when they exceed what remains. Registries without a
 * quota cost one HEAD. Failures here are left for the planning to report.
 */
export async function checkPullBudget(pulls: PlannedPull[], options: PullBudgetOptions): Promise<void> {
  const byRegistry = new Map<RegistryClient, PlannedPull[]>();
  for (const p of pulls) {
    const list = byRegistry.get(p.client) ?? [];
    list.push(p);
    byRegistry.set(p.client, list);
  }
  const limit = pLimit(options.concurrency ?? 8);
  for (const [client, list] of byRegistry) {
    const registry = client.endpoint.registry;
    const costOf = async (p: PlannedPull): Promise<{ key: string; gets: number }> => {
      try {
        const desc = await client.resolve(p.repository, p.reference, { headOnly: true });
        if (!desc) return { key: `${p.repository}@${p.reference}`, gets: 0 };
        const gets = isIndex(desc.mediaType) ? 1 + Math.max(1, options.platforms) : 1;
        return { key: desc.digest, gets };
      } catch {
        return { key: `${p.repository}@${p.reference}`, gets: 1 };
      }
    };
    const first = await costOf(list[0]!);
    if (options.tracker.quota(registry) === undefined) continue;
    const rest = await Promise.all(list.slice(1).map((p) => limit(() => costOf(p))));
    // The same manifest under two names is read once.
    const costs = new Map<string, number>();
    for (const c of [first, ...rest]) costs.set(c.key, c.gets);
    const needed = [...costs.values()].reduce((a, b) => a + b, 0);
    const quota = options.tracker.quota(registry)!;
    if (needed > quota.remaining) throw quotaError(registry, quota, needed, list.length);
  }
}

function quotaError(registry: string, quota: PullQuota, needed: number, images: number): RemoteError {
  const window = quota.windowSeconds ? ` per ${formatWindow(quota.windowSeconds)}` : '';
  return new RemoteError(
    `${registry} allows ${quota.limit} pulls${window} to this client and ${quota.remaining} remain; ` +
      `packing ${images} image${images === 1 ? '' : 's'} from it needs at least ${needed} manifest reads, each counted as a pull; nothing was downloaded`,
    {
      hint:
        `log in for a higher limit (docker login ${registry}, or --registry-username with --registry-password-env), ` +
        `pack through a mirror (--registry-mirror ${registry}=URL), or split the image list and wait for the window to reset`,
    },
  );
}

function formatWindow(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}
