import { Readable } from 'node:stream';
import { verify, type KeyObject } from 'node:crypto';
import { VerificationError } from '../cli/errors.ts';
import type { Descriptor, ImageManifest } from '../oci/descriptor.ts';
import { digestOf, parseDigest } from '../oci/digest.ts';
import { MediaType } from '../oci/mediatype.ts';
import type { RegistryClient } from '../registry/client.ts';
import { signBlob } from './keys.ts';

/**
 * Image signatures as cosign writes them with a key (its "legacy" layout,
 * the default of cosign 2 and what Kyverno's verifyImages and sigstore's
 * policy-controller read): in the image's own repository, the tag
 * `sha256-<hex>.sig` names an OCI manifest whose layers are simple-signing
 * payloads, each with its base64 ECDSA signature in the annotation
 * `dev.cosignproject.cosign/signature`. Another signature of the same image
 * is another layer of that manifest.
 */
export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
/** A payload is a few hundred bytes: a bigger layer is not one we read. */
const MAX_PAYLOAD_BYTES = 64 * 1024;

/** The tag of an image's signatures: sha256-<hex>.sig. */
export function signatureTag(digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return `${algorithm}-${hex}.sig`;
}

/** The simple-signing payload (sigstore/sigstore pkg/signature/payload), as cosign marshals it. */
export function simpleSigningPayload(dockerReference: string, digest: string, optional?: Record<string, string>): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: { identity: { 'docker-reference': dockerReference }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' },
      optional: optional ?? null,
    }),
  );
}

export interface SignedImage {
  /** The signature manifest's tag and digest. */
  tag: string;
  manifest: string;
  /** How many signatures the manifest now holds. */
  signatures: number;
}

/**
 * Sign repository@digest with the key: the payload layer is added to the
 * image's .sig manifest (created if there is none), after the layers it has.
 */
export async function signImage(client: RegistryClient, repository: string, digest: string, key: KeyObject, optional?: Record<string, string>): Promise<SignedImage> {
  const payload = simpleSigningPayload(client.display(repository), digest, optional);
  const layer: Descriptor = {
    mediaType: SIMPLE_SIGNING,
    digest: digestOf(payload),
    size: payload.length,
    annotations: { [SIGNATURE_ANNOTATION]: signBlob(payload, key) },
  };
  const tag = signatureTag(digest);
  const existing = await client.getManifest(repository, tag);
  const layers: Descriptor[] = existing ? (JSON.parse(existing.bytes.toString('utf8')) as ImageManifest).layers ?? [] : [];
  if (!(await client.blobExists(repository, layer))) await client.pushBlob(repository, layer, Readable.from([payload]));
  layers.push(layer);
  const config = Buffer.from(
    JSON.stringify({
      architecture: '',
      created: '0001-01-01T00:00:00Z',
      history: layers.map(() => ({ created: '0001-01-01T00:00:00Z' })),
      os: '',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      config: {},
    }),
  );
  const configDesc: Descriptor = { mediaType: MediaType.ociConfig, digest: digestOf(config), size: config.length };
  if (!(await client.blobExists(repository, configDesc))) await client.pushBlob(repository, configDesc, Readable.from([config]));
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, config: configDesc, layers };
  const bytes = Buffer.from(JSON.stringify(manifest));
  return { tag, manifest: await client.putManifest(repository, tag, MediaType.ociManifest, bytes), signatures: layers.length };
}

/**
 * Whether repository@digest carries a signature by the public key: a
 * simple-signing layer of its .sig manifest whose annotation verifies over
 * the payload's bytes and whose payload names this digest.
 */
export async function hasValidSignature(client: RegistryClient, repository: string, digest: string, publicKey: KeyObject): Promise<boolean> {
  const sig = await client.getManifest(repository, signatureTag(digest));
  if (!sig) return false;
  let layers: Descriptor[];
  try {
    layers = (JSON.parse(sig.bytes.toString('utf8')) as ImageManifest).layers ?? [];
  } catch {
    return false;
  }
  for (const l of layers) {
    const signature = l.annotations?.[SIGNATURE_ANNOTATION];
    if (l.mediaType !== SIMPLE_SIGNING || !signature || l.size > MAX_PAYLOAD_BYTES) continue;
    const payload = await readSmallBlob(client, repository, l);
    let ok = false;
    try {
      ok = verify('sha256', payload, publicKey, Buffer.from(signature, 'base64'));
    } catch {
      ok = false;
    }
    if (!ok) continue;
    try {
      const p = JSON.parse(payload.toString('utf8')) as { critical?: { image?: { 'docker-manifest-digest'?: string }; type?: string } };
      if (p.critical?.image?.['docker-manifest-digest'] === digest && p.critical.type === 'cosign container image signature') return true;
    } catch {
      // a signed payload that is not JSON names nothing
    }
  }
  return false;
}

async function readSmallBlob(client: RegistryClient, repository: string, desc: Descriptor): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of client.fetchBlob(repository, desc)) {
    size += (chunk as Buffer).length;
    if (size > MAX_PAYLOAD_BYTES) throw new VerificationError(`signature payload ${desc.digest} of ${client.display(repository)} is larger than ${MAX_PAYLOAD_BYTES} bytes`);
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}
