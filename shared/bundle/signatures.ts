import { isManifestOrIndex } from '../oci/mediatype.ts';

/**
 * An image's signatures, attestations and SBOMs as `pack --with-signatures`
 * carries them (each image entry of airlock.json lists its own): manifests
 * in oci/, byte for byte, that the loader pushes next to the image.
 *
 * - `sig`, `att`, `sbom`: cosign's tag scheme, the manifest tagged
 *   `sha256-<hex>.sig|.att|.sbom` (hex: the subject's) in the image's repository;
 * - `referrer`: an OCI 1.1 referrer, a manifest whose `subject` is the
 *   subject; `artifactType` and `annotations` are as the source registry listed
 *   it, which is what the loader writes into the `sha256-<hex>` fallback index.
 */
export type SignatureKind = 'sig' | 'att' | 'sbom' | 'referrer';
export const TAG_KINDS = ['sig', 'att', 'sbom'] as const;

export interface BundleSignature {
  kind: SignatureKind;
  /** The manifest it is about: the image's root, or one of the manifests of its index. */
  subject: string;
  /** sig, att, sbom: the tag, sha256-<subject hex>.<kind>. */
  tag?: string;
  digest: string;
  mediaType: string;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** The tag cosign gives a subject's signatures (sig), attestations (att) or SBOM (sbom). */
export function cosignTag(subject: string, kind: (typeof TAG_KINDS)[number]): string {
  return `${subject.replace(':', '-')}.${kind}`;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** What is wrong with one entry of an image's `signatures`, if anything (the index is untrusted until checked). */
export function signatureProblem(s: Partial<BundleSignature> | null): string | undefined {
  if (typeof s !== 'object' || s === null || Array.isArray(s)) return 'is not an object';
  if (s.kind !== 'referrer' && !(TAG_KINDS as readonly string[]).includes(s.kind as string)) return `has an unknown kind ${JSON.stringify(s.kind)}`;
  if (typeof s.subject !== 'string' || !DIGEST.test(s.subject)) return 'needs a sha256 subject';
  if (typeof s.digest !== 'string' || !DIGEST.test(s.digest)) return 'needs a sha256 digest';
  if (typeof s.mediaType !== 'string' || !isManifestOrIndex(s.mediaType)) return 'needs a manifest or index mediaType';
  if (s.kind === 'referrer') {
    if (s.tag !== undefined) return 'is a referrer and so has no tag';
  } else if (s.tag !== cosignTag(s.subject, s.kind!)) return `needs the tag ${cosignTag(s.subject, s.kind!)}`;
  if (s.artifactType !== undefined && typeof s.artifactType !== 'string') return 'artifactType must be a string';
  if (s.annotations !== undefined && (typeof s.annotations !== 'object' || s.annotations === null || Object.values(s.annotations).some((v) => typeof v !== 'string'))) {
    return 'annotations must map strings to strings';
  }
  return undefined;
}
