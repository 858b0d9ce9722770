import { VerificationError } from '../cli/errors.ts';
import type { Descriptor, ImageIndex, ImageManifest } from './descriptor.ts';

/** Media types of the OCI image spec and Docker's schema 2, and parsing manifests safely. */
export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  ociLayerNondistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** The Accept header for manifest requests: every type we can read, indexes first. */
export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.ociManifest,
  MediaType.dockerManifestList,
  MediaType.dockerManifest,
].join(', ');

export function isIndex(mediaType: string): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
}

export function isManifest(mediaType: string): boolean {
  return mediaType === MediaType.ociManifest || mediaType === MediaType.dockerManifest;
}

export function isManifestOrIndex(mediaType: string): boolean {
  return isIndex(mediaType) || isManifest(mediaType);
}

function isSchema1(mediaType: string): boolean {
  return mediaType === MediaType.dockerSchema1 || mediaType === MediaType.dockerSchema1Signed;
}

/** A layer stored outside the registry (Windows base layers): listed, but never fetched. */
export function isForeignLayer(d: Descriptor): boolean {
  return (d.urls?.length ?? 0) > 0;
}

export interface ParsedManifest {
  mediaType: string;
  index?: ImageIndex;
  manifest?: ImageManifest;
}

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/**
 * Parse manifest or index bytes. The media type comes from the body's
 * mediaType, else the Content-Type, else the shape; a body whose mediaType
 * contradicts a manifest Content-Type is refused (distribution-spec), and so is
 * Docker schema 1. Every descriptor is checked for a sane digest and size.
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined, what: string): ParsedManifest {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new VerificationError(`${what}: not valid JSON (${(err as Error).message})`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new VerificationError(`${what}: not a JSON object`);
  }
  const declared = contentType?.split(';')[0]?.trim().toLowerCase() || undefined;
  const own = typeof body.mediaType === 'string' ? body.mediaType : undefined;
  if (body.schemaVersion === 1 || (own && isSchema1(own)) || (declared && isSchema1(declared))) {
    throw new VerificationError(
      `${what}: Docker schema 1 manifests are deprecated and not supported; re-push the image with a current client`,
    );
  }
  if (own && declared && isManifestOrIndex(declared) && own !== declared) {
    throw new VerificationError(`${what}: body says mediaType ${own} but was served as ${declared}`);
  }
  const mediaType =
    own ??
    (declared && isManifestOrIndex(declared) ? declared : undefined) ??
    (Array.isArray(body.manifests) ? MediaType.ociIndex : body.config ? MediaType.ociManifest : undefined);
  if (!mediaType || !isManifestOrIndex(mediaType)) {
    throw new VerificationError(`${what}: unsupported manifest media type ${mediaType ?? '(none)'}`);
  }
  if (body.schemaVersion !== 2) throw new VerificationError(`${what}: schemaVersion must be 2`);
  if (isIndex(mediaType)) {
    if (!Array.isArray(body.manifests)) throw new VerificationError(`${what}: index without a manifests list`);
    body.manifests.forEach((d, i) => checkDescriptor(d, `${what}: manifests[${i}]`));
    return { mediaType, index: body as unknown as ImageIndex };
  }
  checkDescriptor(body.config, `${what}: config`);
  if (!Array.isArray(body.layers)) throw new VerificationError(`${what}: manifest without a layers list`);
  body.layers.forEach((d, i) => checkDescriptor(d, `${what}: layers[${i}]`));
  return { mediaType, manifest: body as unknown as ImageManifest };
}

function checkDescriptor(d: unknown, what: string): void {
  const o = d as Partial<Descriptor> | null;
  if (o === null || typeof o !== 'object') throw new VerificationError(`${what}: not a descriptor`);
  if (typeof o.mediaType !== 'string' || o.mediaType === '') throw new VerificationError(`${what}: missing mediaType`);
  if (typeof o.digest !== 'string' || !DIGEST_RE.test(o.digest)) {
    throw new VerificationError(`${what}: invalid digest ${JSON.stringify(o.digest)}`);
  }
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) {
    throw new VerificationError(`${what}: invalid size ${JSON.stringify(o.size)}`);
  }
}

/**
 * What a manifest or index points to: an index's manifests; a manifest's
 * config then layers, foreign layers (with urls) left out since registries do
 * not hold them. A `subject` is not a child.
 */
export function childrenOf(parsed: ParsedManifest): Descriptor[] {
  if (parsed.index) return parsed.index.manifests;
  const m = parsed.manifest!;
  return [m.config, ...m.layers.filter((l) => !isForeignLayer(l))];
}
