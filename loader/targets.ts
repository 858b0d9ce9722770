import { UsageError, VerificationError } from '../shared/cli/errors.ts';
import type { BundleFileScan } from '../shared/bundle/file.ts';
import type { Descriptor } from '../shared/oci/descriptor.ts';
import { depthConflicts, internalRepository, mappingConflicts } from '../shared/oci/mapping.ts';
import { parseReference, type ImageReference } from '../shared/oci/reference.ts';

/**
 * What `load` pushes: one root manifest (an image's, or a chart artifact's)
 * to one repository of the enclave registry, tagged when it has a tag.
 */
export interface Target {
  kind: 'image' | 'chart';
  /** For messages and the report: the image reference, or "charts/NAME:VERSION". */
  source: string;
  /** Repository in the enclave registry, prefix included. */
  repository: string;
  tag?: string;
  root: Descriptor;
  /** The digest the tag points to now, if any (set by the preflight). */
  current?: string;
}

/** Size of each entry of the bundle, by path. */
export function entrySizes(scan: BundleFileScan): Map<string, number> {
  return new Map(scan.entries.map((e) => [e.path, e.size]));
}

/** The descriptor of the bundle's manifest `digest`, or a VerificationError naming `what`. */
export function rootDescriptor(sizes: ReadonlyMap<string, number>, name: string, what: string, mediaType: string, digest: string): Descriptor {
  const size = sizes.get(`oci/blobs/sha256/${digest.slice('sha256:'.length)}`);
  if (size === undefined) throw new VerificationError(`${name}: ${what} (${digest}) is not in the bundle`, { hint: 'pack it again' });
  return { mediaType, digest, size };
}

/**
 * Every image of the bundle, mapped to REGISTRY[/PREFIX]/<path>:<tag> (host
 * dropped, path kept; with `mapDepth`, the path folded to that many segments).
 */
export function imageTargets(scan: BundleFileScan, prefix: string, name: string, mapDepth?: number): Target[] {
  const sizes = entrySizes(scan);
  const refs: ImageReference[] = [];
  const targets = scan.index.images.map((img): Target => {
    let ref: ImageReference;
    try {
      ref = parseReference(img.ref);
    } catch (err) {
      throw new VerificationError(`${name}: the signed index names an invalid image reference ${JSON.stringify(img.ref)}: ${(err as Error).message}`);
    }
    refs.push(ref);
    return {
      kind: 'image',
      source: img.ref,
      repository: internalRepository(ref, prefix, mapDepth),
      ...(ref.tag ? { tag: ref.tag } : {}),
      root: rootDescriptor(sizes, name, `image ${img.ref}`, img.mediaType, img.digest),
    };
  });
  const conflicts = mappingConflicts(refs);
  if (conflicts.length > 0) {
    throw new UsageError(`images from different registries would share enclave repositories: ${conflicts.map((c) => `${c.repository} <- ${c.sources.join(', ')}`).join('; ')}`);
  }
  const folded = depthConflicts([...new Set(refs.map((r) => r.repository))], mapDepth);
  if (folded.length > 0) {
    throw new UsageError(`--map-depth ${mapDepth} folds different repositories into one: ${folded.map((c) => `${c.repository} <- ${c.sources.join(', ')}`).join('; ')}`, {
      hint: 'their tags would mix; choose a larger --map-depth, or a registry that takes deeper paths',
    });
  }
  return targets;
}
