import { RemoteError } from '../cli/errors.ts';
import type { Descriptor, ImageIndex } from '../oci/descriptor.ts';
import { isManifestOrIndex, MediaType } from '../oci/mediatype.ts';
import type { RegistryClient } from './client.ts';

/**
 * OCI 1.1 referrers (distribution-spec "Listing Referrers", "Referrers Tag
 * Schema"): the manifests whose `subject` is a given manifest. A registry
 * with the referrers API lists them at GET /v2/<name>/referrers/<digest> and
 * never answers that with 404; one without it (docker-registry 2.8, and 3.x)
 * answers 404, and clients keep an image index of them under the tag
 * `<alg>-<hex>` themselves: pushers read, extend and rewrite it.
 */

/** Pages of one referrers listing followed before giving up (a page holds many descriptors). */
export const MAX_REFERRERS_PAGES = 100;

export interface ReferrersListing {
  /** 'api': the registry's referrers API answered; 'tag': its 404 sent us to the fallback tag. */
  via: 'api' | 'tag';
  /** The descriptors as listed (artifactType and annotations included), each digest once. */
  referrers: Descriptor[];
}

/**
 * The referrers tag of a digest: the algorithm cut to 32 characters, "-",
 * the encoded part cut to 64, characters a tag may not hold replaced by "-".
 */
export function referrersTag(digest: string): string {
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon).slice(0, 32);
  const encoded = digest.slice(colon + 1).slice(0, 64);
  return `${algorithm}-${encoded}`.replace(/[^A-Za-z0-9_.-]/g, '-');
}

/**
 * The descriptors of a referrers answer (or fallback index), checked: an
 * image index whose entries each name a manifest or index by sha256 digest
 * and size. Entries of other kinds are dropped, a malformed answer refused.
 */
export function parseReferrersIndex(bytes: Buffer, what: string): Descriptor[] {
  let index: Partial<ImageIndex>;
  try {
    index = JSON.parse(bytes.toString('utf8')) as Partial<ImageIndex>;
  } catch (err) {
    throw new RemoteError(`${what}: the answer is not JSON (${(err as Error).message})`);
  }
  if (typeof index !== 'object' || index === null || !Array.isArray(index.manifests)) {
    throw new RemoteError(`${what}: the answer is not an image index (no manifests list)`);
  }
  const out: Descriptor[] = [];
  for (const d of index.manifests as Partial<Descriptor>[]) {
    if (typeof d !== 'object' || d === null) continue;
    if (typeof d.mediaType !== 'string' || !isManifestOrIndex(d.mediaType)) continue;
    if (typeof d.digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(d.digest)) continue;
    if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size <= 0) continue;
    out.push({
      mediaType: d.mediaType,
      digest: d.digest,
      size: d.size,
      ...(typeof d.artifactType === 'string' ? { artifactType: d.artifactType } : {}),
      ...(isStringMap(d.annotations) ? { annotations: d.annotations } : {}),
    });
  }
  return out;
}

/**
 * The referrers of repository@digest: through the referrers API, following
 * its pages, or (on 404) the fallback tag's index; none when neither exists
 * or the tag holds something else than an index.
 */
export async function listReferrers(client: RegistryClient, repository: string, digest: string): Promise<ReferrersListing> {
  const what = `referrers of ${client.display(repository)}@${digest}`;
  const seen = new Map<string, Descriptor>();
  let page = await client.referrersPage(repository, digest);
  if (page === undefined) {
    const fallback = await client.getManifest(repository, referrersTag(digest));
    if (!fallback || fallback.descriptor.mediaType !== MediaType.ociIndex) return { via: 'tag', referrers: [] };
    for (const d of parseReferrersIndex(fallback.bytes, `${what} (tag ${referrersTag(digest)})`)) if (!seen.has(d.digest)) seen.set(d.digest, d);
    return { via: 'tag', referrers: [...seen.values()] };
  }
  for (let pages = 1; ; pages++) {
    for (const d of parseReferrersIndex(page.bytes, what)) if (!seen.has(d.digest)) seen.set(d.digest, d);
    if (!page.next) break;
    if (pages >= MAX_REFERRERS_PAGES) throw new RemoteError(`${what}: more than ${MAX_REFERRERS_PAGES} pages`);
    const next: URL = page.next;
    page = await client.referrersPage(repository, digest, next);
    if (page === undefined) throw new RemoteError(`${what}: the next page ${next.pathname}${next.search} answered 404`);
  }
  return { via: 'api', referrers: [...seen.values()] };
}

/**
 * Whether the registry has the referrers API, asked of a manifest it holds
 * (a registry with the API may still answer 404 for a repository it does not have).
 */
export async function hasReferrersApi(client: RegistryClient, repository: string, digest: string): Promise<boolean> {
  return (await client.referrersPage(repository, digest)) !== undefined;
}

/**
 * The fallback index with `add` in it: the existing index (another tool's
 * referrers kept, in their order) plus each descriptor it lacks, appended.
 * `changed` is false when every one was already listed.
 */
export function withReferrers(existing: ImageIndex | undefined, add: Descriptor[]): { index: ImageIndex; changed: boolean } {
  const index: ImageIndex = existing ?? { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  const listed = new Set(index.manifests.map((m) => m.digest));
  const missing = add.filter((d) => !listed.has(d.digest) && listed.add(d.digest));
  if (missing.length === 0) return { index, changed: existing === undefined ? add.length > 0 : false };
  return { index: { ...index, manifests: [...index.manifests, ...missing] }, changed: true };
}

function isStringMap(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}
