import { isMap, parseAllDocuments } from 'yaml';
import { UsageError, VerificationError } from '../../shared/cli/errors.ts';
import type { BundleChart, BundleIndex } from '../../shared/bundle/format.ts';
import { renderFluxRelease } from './flux.ts';
import { pinImages } from './pins.ts';
import { releaseKustomization } from './release-namespace.ts';
import type { EnclaveRegistry } from '../../shared/oci/mapping.ts';

export { imageName } from './pins.ts';

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
 *
 * Charts: a `gitops: rendered` chart's output (manifests/<releaseName>/) is
 * part of the base like any manifest, with a kustomization of its own in
 * base/<releaseName>/ that puts what its templates leave unnamespaced in the
 * release's namespace (release-namespace.ts). A `gitops: helmrelease` chart is
 * base/<releaseName>/{ocirepository,helmrelease}.yaml instead (flux.ts), both
 * resources of the base, and its rendered output goes to
 * rendered/<releaseName>/, for review only: no kustomization lists it.
 */
export interface BaseInput {
  index: BundleIndex;
  indexBytes: Buffer;
  signature: string;
  /** The bundle's manifests/ entries. */
  manifests: { path: string; bytes: Buffer }[];
  /** The values entry (charts/<releaseName>/values.yaml) of each helmrelease chart, by bundle path. */
  chartValues?: ReadonlyMap<string, Buffer>;
  /** The enclave registry: HOST[:PORT], optional prefix, --map-depth. */
  registry: EnclaveRegistry;
  /** The registry speaks plain HTTP (load --plain-http): Flux fetches charts from it so. */
  plainHttp?: boolean;
  loadReport: unknown;
}

/** Helm's rule for release names (a DNS-1123 subdomain, at most 53 characters). */
const RELEASE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const KUSTOMIZATION = /(^|\/)(kustomization\.ya?ml|Kustomization)$/;
/** A Kubernetes namespace (a DNS-1123 label). */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** The files to write, by path relative to PATH. */
export function renderBase(input: BaseInput): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const c of input.index.charts) {
    // Release names become folders here: Helm's own rule keeps them plain names.
    if (!RELEASE_NAME.test(c.releaseName) || c.releaseName.length > 53) {
      throw new VerificationError(`chart ${c.name}: release name ${JSON.stringify(c.releaseName)} is not a valid Helm release name`, { hint: 'the bundle is malformed; pack it again' });
    }
    if (!NAMESPACE.test(c.namespace) || c.namespace.length > 63) {
      throw new VerificationError(`chart ${c.name}: namespace ${JSON.stringify(c.namespace)} is not a valid Kubernetes namespace`, { hint: 'the bundle is malformed; pack it again' });
    }
  }
  const flux = input.index.charts.filter((c) => c.gitops === 'helmrelease');
  const fluxOf = (path: string) => flux.find((c) => path.startsWith(folderOf(c)));
  const reviewOnly = new Map<BundleChart, { path: string; bytes: Buffer }[]>(flux.map((c) => [c, []]));
  const baseManifests: { path: string; bytes: Buffer }[] = [];
  for (const m of input.manifests) {
    const c = fluxOf(m.path);
    if (c) reviewOnly.get(c)!.push(m);
    else baseManifests.push(m);
  }
  const rel = baseManifests.map((m) => ({ path: m.path.replace(/^manifests\//, ''), bytes: m.bytes }));
  if (rel.some((m) => /^kustomization\.ya?ml$|^Kustomization$/.test(m.path))) {
    throw new UsageError('the bundle has a kustomization at the top of manifests/, where airlock writes its own', {
      hint: 'pack the vendor tree as a folder (manifests: - path: ./deploy), not its contents',
    });
  }
  // A rendered chart's folder: one resource, its own kustomization setting the release namespace.
  for (const c of input.index.charts.filter((x) => x.gitops === 'rendered')) {
    const folder = folderOf(c).replace(/^manifests\//, '');
    const own = rel.filter((m) => m.path.startsWith(folder)).map((m) => ({ path: m.path.slice(folder.length), bytes: m.bytes }));
    if (own.some((m) => /^(kustomization\.ya?ml|Kustomization)$/.test(m.path))) {
      throw new UsageError(`the bundle has a kustomization at the top of manifests/${folder}, where airlock writes the one of chart ${c.name} (release ${c.releaseName})`, {
        hint: 'give the chart another releaseName, or move those manifests, and pack again',
      });
    }
    const resources = resourcesOf(own);
    if (resources.length > 0) rel.push({ path: `${folder}kustomization.yaml`, bytes: releaseKustomization(c, resources, input.index) });
  }
  for (const m of rel) files.set(`base/${m.path}`, m.bytes);
  const resources = resourcesOf(rel);

  for (const [c, rendered] of reviewOnly) {
    const label = `chart ${c.name} (release ${c.releaseName})`;
    if (rel.some((m) => m.path.startsWith(`${c.releaseName}/`))) {
      throw new UsageError(`the bundle has manifests under ${c.releaseName}/, where airlock writes the Flux objects of ${label}`, {
        hint: 'give the chart another releaseName, or move those manifests, and pack again',
      });
    }
    for (const m of rendered) files.set(`rendered/${c.releaseName}/${m.path.slice(folderOf(c).length)}`, m.bytes);
    const values = input.chartValues?.get(c.values);
    if (values === undefined) throw new VerificationError(`${label}: its values ${c.values} are not in the bundle`, { hint: 'the bundle is malformed; pack it again' });
    const pins = pinImages(rendered, { index: input.index, registry: input.registry, what: `${label}`, also: c.images });
    const objects = renderFluxRelease({ chart: c, values, registry: input.registry, plainHttp: input.plainHttp === true, pins, bundle: input.index });
    files.set(`base/${c.releaseName}/ocirepository.yaml`, objects.ociRepository);
    files.set(`base/${c.releaseName}/helmrelease.yaml`, objects.helmRelease);
    resources.push(`${c.releaseName}/ocirepository.yaml`, `${c.releaseName}/helmrelease.yaml`);
  }
  resources.sort();

  const images = pinImages(baseManifests, { index: input.index, registry: input.registry });
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

/**
 * What a kustomization over these files (paths relative to it) lists: each
 * folder with its own kustomization as one entry (the top-most one), and
 * every other file holding Kubernetes objects.
 */
function resourcesOf(files: readonly { path: string; bytes: Buffer }[]): string[] {
  const kustomized = files
    .filter((m) => KUSTOMIZATION.test(m.path))
    .map((m) => m.path.replace(KUSTOMIZATION, ''))
    .sort((a, b) => a.length - b.length)
    .filter((dir, i, all) => !all.slice(0, i).some((outer) => dir.startsWith(`${outer}/`)));
  const inside = (p: string) => kustomized.some((dir) => p.startsWith(`${dir}/`));
  return [...kustomized, ...files.filter((m) => /\.(ya?ml|json)$/i.test(m.path) && !inside(m.path) && isKubernetes(m.bytes)).map((m) => m.path)];
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

/** A chart's rendered folder in the bundle, with its trailing slash. */
function folderOf(c: BundleChart): string {
  return c.manifests.endsWith('/') ? c.manifests : `${c.manifests}/`;
}
