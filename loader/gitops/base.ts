import { isMap, parseAllDocuments } from 'yaml';
import { UsageError } from '../../shared/cli/errors.ts';
import type { BundleIndex } from '../../shared/bundle/format.ts';
import { discoverImages } from '../../shared/manifests/discover.ts';
import { internalRepository } from '../../shared/oci/mapping.ts';
import { formatReference, parseReference, withDefaultTag } from '../../shared/oci/reference.ts';

/**
 * What `load --git` writes under PATH (DESIGN.md §6):
 *   base/...                 the bundle's manifests, byte for byte
 *   base/kustomization.yaml  resources: every manifest (a folder with its own
 *                            kustomization as one entry); images: every image
 *                            name as written in the manifests -> the internal
 *                            name, pinned by digest
 *   airlock/airlock.json, airlock.json.sig, load-report.json
 * The vendor's YAML is never rewritten: the pinning lives in kustomization.yaml,
 * so a diff between two releases shows exactly what the vendor changed.
 */
export interface BaseInput {
  index: BundleIndex;
  indexBytes: Buffer;
  signature: string;
  /** The bundle's manifests/ entries. */
  manifests: { path: string; bytes: Buffer }[];
  /** The enclave registry: HOST[:PORT] and optional prefix. */
  registry: { host: string; prefix: string };
  loadReport: unknown;
}

const KUSTOMIZATION = /(^|\/)(kustomization\.ya?ml|Kustomization)$/;

/** The files to write, by path relative to PATH. */
export function renderBase(input: BaseInput): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const rel = input.manifests.map((m) => ({ path: m.path.replace(/^manifests\//, ''), bytes: m.bytes }));
  if (rel.some((m) => /^kustomization\.ya?ml$|^Kustomization$/.test(m.path))) {
    throw new UsageError('the bundle has a kustomization at the top of manifests/, where airlock writes its own', {
      hint: 'pack the vendor tree as a folder (manifests: - path: ./deploy), not its contents',
    });
  }
  for (const m of rel) files.set(`base/${m.path}`, m.bytes);

  // Folders with their own kustomization are one resource each (the top-most one).
  const kustomized = rel
    .filter((m) => KUSTOMIZATION.test(m.path))
    .map((m) => m.path.replace(KUSTOMIZATION, ''))
    .sort((a, b) => a.length - b.length)
    .filter((dir, i, all) => !all.slice(0, i).some((outer) => dir.startsWith(`${outer}/`)));
  const inside = (p: string) => kustomized.some((dir) => p.startsWith(`${dir}/`));
  const resources = [
    ...kustomized,
    ...rel.filter((m) => /\.(ya?ml|json)$/i.test(m.path) && !inside(m.path) && isKubernetes(m.bytes)).map((m) => m.path),
  ].sort();

  const images = pinnedImages(input);
  const lines = [
    `# Written by airlock load: ${input.index.name} ${input.index.version}. Put environment changes in overlays, not here.`,
    'apiVersion: kustomize.config.k8s.io/v1beta1',
    'kind: Kustomization',
    'resources:',
    ...resources.map((r) => `  - ${JSON.stringify(r)}`),
  ];
  if (images.length > 0) {
    lines.push('images:');
    for (const i of images) lines.push(`  - name: ${JSON.stringify(i.name)}`, `    newName: ${JSON.stringify(i.newName)}`, `    digest: ${i.digest}`);
  }
  files.set('base/kustomization.yaml', Buffer.from(lines.join('\n') + '\n'));
  files.set('airlock/airlock.json', input.indexBytes);
  files.set('airlock/airlock.json.sig', Buffer.from(input.signature));
  files.set('airlock/load-report.json', Buffer.from(JSON.stringify(input.loadReport, null, 2) + '\n'));
  return files;
}

function isKubernetes(bytes: Buffer): boolean {
  try {
    return parseAllDocuments(bytes.toString('utf8')).some((d) => {
      const c = (d as { contents?: unknown }).contents;
      return isMap(c) && c.has('apiVersion') && c.has('kind');
    });
  } catch {
    return false;
  }
}

/** An image string as kustomize matches it: without its tag and digest. */
export function imageName(written: string): string {
  const noDigest = written.split('@')[0]!;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

/** One kustomize images entry per name written in the manifests, pinned to the bundle's digest. */
function pinnedImages(input: BaseInput): { name: string; newName: string; digest: string }[] {
  const digests = new Map(input.index.images.map((i) => [i.ref, i.digest]));
  const byName = new Map<string, { newName: string; digest: string; written: string }>();
  const missing: string[] = [];
  const clashes: string[] = [];
  for (const m of input.manifests) {
    if (!/\.ya?ml$/i.test(m.path)) continue;
    let found;
    try {
      found = discoverImages(m.bytes.toString('utf8'), m.path);
    } catch {
      continue; // not Kubernetes YAML (a values file, a template): nothing to pin
    }
    for (const f of found) {
      const ref = withDefaultTag(parseReference(f.image));
      const digest = ref.digest ?? digests.get(formatReference(ref));
      if (!digest || (ref.digest && !input.index.images.some((i) => i.digest === ref.digest))) {
        missing.push(`${f.image} (${f.where})`);
        continue;
      }
      const name = imageName(f.image);
      const newName = `${input.registry.host}/${internalRepository(ref, input.registry.prefix)}`;
      const seen = byName.get(name);
      if (seen && seen.digest !== digest) clashes.push(`${name}: ${seen.written} and ${f.image}`);
      else byName.set(name, { newName, digest, written: f.image });
    }
  }
  if (missing.length > 0) {
    throw new UsageError(`the manifests use ${missing.length} image(s) the bundle does not carry, which the enclave cannot pull:\n  ${[...new Set(missing)].join('\n  ')}`, {
      hint: 'pack the bundle again with discoverImages: true (or list these images)',
    });
  }
  if (clashes.length > 0) {
    throw new UsageError(`kustomize pins one digest per image name, but the manifests use one name with different tags:\n  ${clashes.join('\n  ')}`, {
      hint: 'use one tag per image name in the manifests',
    });
  }
  return [...byName].map(([name, v]) => ({ name, newName: v.newName, digest: v.digest })).sort((a, b) => (a.name < b.name ? -1 : 1));
}
