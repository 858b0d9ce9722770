import type { Logger } from '../../shared/cli/log.ts';
import { cosignTag, TAG_KINDS, type BundleSignature } from '../../shared/bundle/signatures.ts';
import { copyGraph, planGraph, type CopySession, type GraphPlan } from '../../shared/copy.ts';
import type { Descriptor } from '../../shared/oci/descriptor.ts';
import { parseReference, formatReference } from '../../shared/oci/reference.ts';
import { listReferrers } from '../../shared/registry/referrers.ts';
import type { ContentSink } from '../../shared/store/store.ts';
import { PreloadedContent } from '../../shared/store/preloaded.ts';
import type { RemoteStore } from '../../shared/store/remote.ts';

/**
 * pack --with-signatures: for each packed image, the manifests that sign or
 * describe it in its source repository, found for its root and for every
 * manifest under it (a multi-arch image may be signed as a whole and per
 * platform):
 *
 * 1. cosign's tags, sha256-<hex>.sig / .att / .sbom (a HEAD each: Docker Hub
 *    does not count those as pulls);
 * 2. OCI 1.1 referrers: the referrers API, or its sha256-<hex> fallback index.
 *
 * Each one found is planned like an image (its graph read, no blob yet) and
 * later copied into the bundle byte for byte. An image with none is fine.
 */
export interface SignedImageInput {
  canonical: string;
  source: RemoteStore;
  /** The root as the registry has it. */
  rootRead: Descriptor;
  /** The image's plan: its root as packed (a platform-filtered index has a new digest) and every manifest under it. */
  plan: GraphPlan;
}

/** One signature manifest to pack: its airlock.json entry, its plan and where it is read from. */
export interface FoundSignature {
  entry: BundleSignature;
  root: Descriptor;
  plan: GraphPlan;
  source: RemoteStore;
  /** Its oci/index.json name: REPOSITORY:sha256-<hex>.sig; a referrer is listed unnamed. */
  ref?: string;
}

export interface FoundSignatures {
  /** Image canonical reference -> what signs it, in a stable order. */
  byImage: Map<string, FoundSignature[]>;
  /** Images whose index was filtered to some platforms: signatures of the index's original digest do not apply. */
  filteredIndexes: string[];
}

export async function discoverSignatures(images: SignedImageInput[], session: CopySession, logger: Logger): Promise<FoundSignatures> {
  const byImage = new Map<string, FoundSignature[]>();
  const filteredIndexes: string[] = [];
  await Promise.all(
    images.map(async (image) => {
      const filtered = image.plan.root.descriptor.digest !== image.rootRead.digest;
      if (filtered) filteredIndexes.push(image.canonical);
      const found = (await Promise.all(subjectsOf(image, filtered).map((subject) => signaturesOf(image, subject, session, logger)))).flat();
      if (found.length > 0) byImage.set(image.canonical, found);
    }),
  );
  // Map order follows the image list, whatever finished first.
  const ordered = new Map(images.filter((i) => byImage.has(i.canonical)).map((i) => [i.canonical, byImage.get(i.canonical)!]));
  return { byImage: ordered, filteredIndexes: images.filter((i) => filteredIndexes.includes(i.canonical)).map((i) => i.canonical) };
}

/** Copy every signature manifest (and its blobs) into the bundle. */
export async function copySignatures(found: FoundSignatures, bundle: ContentSink, session: CopySession): Promise<void> {
  const all = [...found.byImage.values()].flat();
  await session.all(all, async (s) => {
    await copyGraph(new PreloadedContent(s.source, s.plan.read), bundle, s.root, { session });
  });
}

/** oci/index.json's entries for the signatures, each once (two tags of one image share theirs). */
export function signatureRefs(found: FoundSignatures | undefined): { ref?: string; descriptor: Descriptor }[] {
  const refs = new Map<string, { ref?: string; descriptor: Descriptor }>();
  for (const f of [...(found?.byImage.values() ?? [])].flat()) {
    const key = f.ref ?? f.root.digest;
    if (!refs.has(key)) refs.set(key, { ...(f.ref !== undefined ? { ref: f.ref } : {}), descriptor: f.root });
  }
  return [...refs.values()];
}

/** The digests a signature may name: the root as the registry has it (unless filtering changed it), and each manifest under it. */
function subjectsOf(image: SignedImageInput, filtered: boolean): string[] {
  const subjects = new Set<string>();
  if (!filtered) subjects.add(image.rootRead.digest);
  for (const m of image.plan.manifests) if (m !== image.plan.root) subjects.add(m.descriptor.digest);
  return [...subjects];
}

async function signaturesOf(image: SignedImageInput, subject: string, session: CopySession, logger: Logger): Promise<FoundSignature[]> {
  const { source } = image;
  const client = source.client;
  const repositoryRef = parseReference(image.canonical);
  const tagged = (
    await Promise.all(
      TAG_KINDS.map(async (kind) => {
        const tag = cosignTag(subject, kind);
        const root = await session.limit(() => client.resolve(source.repository, tag));
        if (!root) return undefined;
        const plan = await planGraph(source, root, { session });
        const entry: BundleSignature = { kind, subject, tag, digest: root.digest, mediaType: root.mediaType };
        return { entry, root, plan, source, ref: formatReference({ registry: repositoryRef.registry, repository: repositoryRef.repository, tag }) } satisfies FoundSignature;
      }),
    )
  ).filter((f) => f !== undefined);

  const listing = await session.limit(() => listReferrers(client, source.repository, subject));
  const referrers: FoundSignature[] = [];
  for (const listed of listing.referrers) {
    const root: Descriptor = { mediaType: listed.mediaType, digest: listed.digest, size: listed.size };
    const plan = await planGraph(source, root, { session });
    // The fallback index is kept by clients, not the registry: trust only what names this subject.
    const named = subjectOf(plan.read.get(root.digest)!);
    if (named !== subject) {
      logger.warn(`${client.display(source.repository)}: referrer ${listed.digest} listed for ${subject} names ${named ?? 'no subject'}; not packed`);
      continue;
    }
    referrers.push({
      entry: {
        kind: 'referrer',
        subject,
        digest: root.digest,
        mediaType: root.mediaType,
        ...(listed.artifactType !== undefined ? { artifactType: listed.artifactType } : {}),
        ...(listed.annotations !== undefined ? { annotations: listed.annotations } : {}),
      },
      root,
      plan,
      source,
    });
  }
  return [...tagged, ...referrers];
}

function subjectOf(bytes: Buffer): string | undefined {
  try {
    const m = JSON.parse(bytes.toString('utf8')) as { subject?: { digest?: unknown } };
    return typeof m.subject?.digest === 'string' ? m.subject.digest : undefined;
  } catch {
    return undefined;
  }
}
