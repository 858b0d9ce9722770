import type { Logger } from '../shared/cli/log.ts';
import type { BundleFileScan } from '../shared/bundle/file.ts';
import type { BundleSignature } from '../shared/bundle/signatures.ts';
import type { BundleFileSource } from '../shared/bundle/source.ts';
import { copyGraph, type CopySession } from '../shared/copy.ts';
import type { Descriptor, ImageIndex, ImageManifest } from '../shared/oci/descriptor.ts';
import { MediaType } from '../shared/oci/mediatype.ts';
import type { RegistryClient } from '../shared/registry/client.ts';
import { hasReferrersApi, referrersTag, withReferrers } from '../shared/registry/referrers.ts';
import { RemoteStore } from '../shared/store/remote.ts';
import { entrySizes, rootDescriptor, type Target } from './targets.ts';

/**
 * load: the signatures a bundle packed with --with-signatures carries, pushed
 * next to their images (the repository the image maps to), digests unchanged,
 * once the whole bundle checked out and the images are in:
 *
 * 1. every signature manifest and its blobs (copyGraph: present is skipped);
 * 2. cosign's tags, sha256-<hex>.sig/.att/.sbom; a tag already at other
 *    content (the image was signed again in the enclave: `airlock approve`
 *    adds its layer to the .sig manifest) is left as it is, and named unless
 *    it still holds every layer of the bundle's manifest;
 * 3. OCI 1.1 referrers: a registry with the referrers API (asked once) indexes
 *    them as they are pushed; for one without it (docker-registry 2.8), the
 *    sha256-<hex> fallback index of each subject gets the ones it lacks.
 */
export interface SignatureTarget {
  /** The image it belongs to, as the bundle names it. */
  image: string;
  /** The image's repository in the enclave registry. */
  repository: string;
  entry: BundleSignature;
  root: Descriptor;
}

export interface LoadedSignatures {
  /** Images that carry any. */
  images: number;
  manifests: number;
  pushed: number;
  present: number;
  /** Tags left pointing at other content (REPOSITORY:TAG). */
  kept: string[];
  /** Fallback indexes written (none when the registry has the referrers API). */
  fallbackIndexes: number;
  /** Whether the registry has the referrers API (asked only when the bundle has referrers). */
  referrersApi?: boolean;
}

/** The signatures of every image of the bundle, each mapped as its image is. */
export function signatureTargets(scan: BundleFileScan, images: readonly Target[], name: string): SignatureTarget[] {
  const sizes = entrySizes(scan);
  const repositoryOf = new Map(images.filter((t) => t.kind === 'image').map((t) => [t.source, t.repository]));
  const out: SignatureTarget[] = [];
  for (const img of scan.index.images) {
    const repository = repositoryOf.get(img.ref);
    if (repository === undefined) continue;
    for (const entry of img.signatures ?? []) {
      out.push({ image: img.ref, repository, entry, root: rootDescriptor(sizes, name, `${entry.kind} ${entry.digest} of image ${img.ref}`, entry.mediaType, entry.digest) });
    }
  }
  return out;
}

export interface LoadSignaturesOptions {
  client: RegistryClient;
  source: BundleFileSource;
  session: CopySession;
  overwriteTags?: boolean;
  dryRun?: boolean;
  logger: Logger;
}

export async function loadSignatures(all: SignatureTarget[], options: LoadSignaturesOptions): Promise<LoadedSignatures> {
  const { client, session } = options;
  // Two tags of one repository at one digest share their signatures: each is placed once.
  const targets = [...new Map(all.map((t) => [`${t.repository} ${t.entry.kind} ${t.entry.tag ?? ''} ${t.entry.subject} ${t.entry.digest}`, t])).values()];
  const stores = new Map<string, RemoteStore>();
  const storeFor = (repository: string): RemoteStore => {
    let s = stores.get(repository);
    if (!s) stores.set(repository, (s = new RemoteStore(client, repository)));
    return s;
  };
  const result: LoadedSignatures = {
    images: new Set(all.map((t) => t.image)).size,
    manifests: targets.length,
    pushed: 0,
    present: 0,
    kept: [],
    fallbackIndexes: 0,
  };
  // 1. The manifests and their blobs.
  await session.all(targets, async (t) => {
    const store = storeFor(t.repository);
    if (await session.limit(() => store.exists(t.root))) result.present++;
    else {
      result.pushed++;
      if (!options.dryRun) await copyGraph(options.source, store, t.root, { session });
    }
  });
  if (options.dryRun) return result;
  // 2. cosign's tags.
  await session.all(
    targets.filter((t) => t.entry.tag !== undefined),
    (t) => session.limit(() => placeTag(t, storeFor(t.repository), options, result)),
  );
  // 3. Referrers: the fallback index where the registry has no referrers API.
  const referrers = targets.filter((t) => t.entry.kind === 'referrer');
  if (referrers.length > 0) {
    const probe = referrers[0]!;
    result.referrersApi = await hasReferrersApi(client, probe.repository, probe.entry.subject);
    if (!result.referrersApi) result.fallbackIndexes = await writeFallbackIndexes(client, referrers, session);
  }
  return result;
}

async function placeTag(t: SignatureTarget, store: RemoteStore, options: LoadSignaturesOptions, result: LoadedSignatures): Promise<void> {
  const tag = t.entry.tag!;
  const current = await options.client.resolve(t.repository, tag);
  if (current?.digest === t.root.digest) return;
  if (!current || options.overwriteTags) {
    await store.tag(t.root, tag);
    return;
  }
  // Signed again in the enclave: fine as long as the bundle's signatures are still among its layers.
  if (await holdsLayersOf(options.client, t, current.digest, options.source)) return;
  const display = `${options.client.display(t.repository)}:${tag}`;
  result.kept.push(display);
  options.logger.warn(
    `${display} already points at ${current.digest}, which lacks layers of the bundle's ${t.entry.kind} manifest ${t.root.digest}; the tag was left as it is (that manifest is in the repository by digest; --overwrite-tags moves the tag)`,
  );
}

async function holdsLayersOf(client: RegistryClient, t: SignatureTarget, currentDigest: string, source: BundleFileSource): Promise<boolean> {
  const there = await client.getManifest(t.repository, currentDigest);
  if (!there) return false;
  const layers = (bytes: Buffer) => {
    try {
      return (JSON.parse(bytes.toString('utf8')) as Partial<ImageManifest>).layers?.map((l) => l.digest) ?? [];
    } catch {
      return [];
    }
  };
  const parts: Buffer[] = [];
  for await (const chunk of (await source.fetch(t.root)) as AsyncIterable<Buffer>) parts.push(chunk);
  const have = new Set(layers(there.bytes));
  const wanted = layers(Buffer.concat(parts));
  return wanted.length > 0 && wanted.every((d) => have.has(d));
}

/** Per repository and subject: the fallback index extended with the referrers it lacks. Returns how many were written. */
async function writeFallbackIndexes(client: RegistryClient, referrers: SignatureTarget[], session: CopySession): Promise<number> {
  const groups = new Map<string, SignatureTarget[]>();
  for (const t of referrers) {
    const key = `${t.repository} ${t.entry.subject}`;
    groups.set(key, [...(groups.get(key) ?? []), t]);
  }
  let written = 0;
  await session.all([...groups.values()], (group) =>
    session.limit(async () => {
      const { repository, entry } = group[0]!;
      const tag = referrersTag(entry.subject);
      const existing = await client.getManifest(repository, tag);
      const current = existing && existing.descriptor.mediaType === MediaType.ociIndex ? (JSON.parse(existing.bytes.toString('utf8')) as ImageIndex) : undefined;
      const { index, changed } = withReferrers(current, group.map(listedDescriptor));
      if (!changed) return;
      await client.putManifest(repository, tag, MediaType.ociIndex, Buffer.from(JSON.stringify(index)));
      written++;
    }),
  );
  return written;
}

/** A referrer as the fallback index lists it: as the source registry listed it. */
function listedDescriptor(t: SignatureTarget): Descriptor {
  return {
    mediaType: t.root.mediaType,
    digest: t.root.digest,
    size: t.root.size,
    ...(t.entry.artifactType !== undefined ? { artifactType: t.entry.artifactType } : {}),
    ...(t.entry.annotations !== undefined ? { annotations: t.entry.annotations } : {}),
  };
}
