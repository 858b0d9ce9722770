import { UsageError } from '../../shared/cli/errors.ts';
import type { BundleIndex } from '../../shared/bundle/format.ts';
import { discoverImages } from '../../shared/manifests/discover.ts';
import { internalRepository, type EnclaveRegistry } from '../../shared/oci/mapping.ts';
import { formatReference, parseReference, withDefaultTag } from '../../shared/oci/reference.ts';

/**
 * Image pins, as kustomize's `images:` and Flux's post-renderer
 * `kustomize.images` take them: every image name written in some manifests
 * (without tag or digest, as kustomize matches it) -> the internal name in
 * the enclave registry, pinned by the bundle's digest.
 */
export interface ImagePin {
  name: string;
  newName: string;
  digest: string;
}

export interface PinOptions {
  index: BundleIndex;
  registry: EnclaveRegistry;
  /** How messages name what uses the images: "the manifests", "chart web (release web)". */
  what?: string;
  /** More references as written (a chart's image annotations): pinned when the bundle carries them, skipped otherwise. */
  also?: readonly string[];
}

/** An image string as kustomize matches it: without its tag and digest. */
export function imageName(written: string): string {
  const noDigest = written.split('@')[0]!;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

/**
 * One pin per image name the manifests' workloads use. An image the bundle
 * does not carry, or one name with two digests (kustomize pins one per
 * name), is a UsageError: the enclave could not pull it.
 */
export function pinImages(manifests: readonly { path: string; bytes: Buffer }[], options: PinOptions): ImagePin[] {
  const { index, registry } = options;
  const what = options.what ?? 'the manifests';
  const digests = new Map(index.images.map((i) => [i.ref, i.digest]));
  const carried = new Set(index.images.map((i) => i.digest));
  const byName = new Map<string, { newName: string; digest: string; written: string }>();
  const missing: string[] = [];
  const clashes: string[] = [];
  const pin = (image: string, where: string | undefined) => {
    let ref;
    try {
      ref = withDefaultTag(parseReference(image));
    } catch (err) {
      if (where === undefined) return;
      throw new UsageError(`${what}: ${where}: invalid image reference ${JSON.stringify(image)}: ${(err as Error).message}`);
    }
    const digest = ref.digest ?? digests.get(formatReference(ref));
    if (!digest || (ref.digest && !carried.has(ref.digest))) {
      if (where !== undefined) missing.push(`${image} (${where})`);
      return;
    }
    const name = imageName(image);
    const seen = byName.get(name);
    if (seen && seen.digest !== digest) clashes.push(`${name}: ${seen.written} and ${image}`);
    else byName.set(name, { newName: `${registry.host}/${internalRepository(ref, registry.prefix, registry.mapDepth)}`, digest, written: image });
  };
  for (const m of manifests) {
    if (!/\.ya?ml$/i.test(m.path)) continue;
    let found;
    try {
      found = discoverImages(m.bytes.toString('utf8'), m.path);
    } catch {
      continue; // not Kubernetes YAML (a values file, a template): nothing to pin
    }
    for (const f of found) pin(f.image, f.where);
  }
  for (const image of options.also ?? []) pin(image, undefined);
  if (missing.length > 0) {
    throw new UsageError(`${what} use ${missing.length} image(s) the bundle does not carry, which the enclave cannot pull:\n  ${[...new Set(missing)].join('\n  ')}`, {
      hint: 'pack the bundle again with discoverImages: true (or list these images)',
    });
  }
  if (clashes.length > 0) {
    throw new UsageError(`kustomize pins one digest per image name, but ${what} use one name with different tags:\n  ${clashes.join('\n  ')}`, {
      hint: 'use one tag per image name in the manifests',
    });
  }
  return [...byName].map(([name, v]) => ({ name, newName: v.newName, digest: v.digest })).sort((a, b) => (a.name < b.name ? -1 : 1));
}
