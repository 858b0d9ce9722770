import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../shared/cli/errors.ts';
import type { Logger } from '../shared/cli/log.ts';
import type { BundleChart } from '../shared/bundle/format.ts';
import type { BundleFile } from '../shared/bundle/writer.ts';
import { copyGraph, type CopySession } from '../shared/copy.ts';
import type { Descriptor } from '../shared/oci/descriptor.ts';
import { formatReference, parseReference, withDefaultTag } from '../shared/oci/reference.ts';
import type { RegistryClient } from '../shared/registry/client.ts';
import type { HttpTransport } from '../shared/registry/transport.ts';
import type { ContentSink } from '../shared/store/store.ts';
import type { Helm } from './helm/helm.ts';
import { renderChart, type RenderedChart } from './helm/render.ts';
import { findingMessages } from './helm/scan.ts';
import { mergeValuesFiles } from './helm/values.ts';
import { ChartArtifactContent, fetchCharts, type ChartFetchOptions, type FetchedChart } from './sources/charts/index.ts';
import { defaultReleaseName, type ChartSpec } from './spec.ts';

/**
 * The chart stage of pack: every `charts:` entry of the spec fetched (its
 * dependencies completed), its values merged into one file, rendered by the
 * real helm, and laid out for the bundle:
 *
 *   oci/...                              the chart's Helm OCI artifact, named charts/NAME:VERSION
 *   charts/<releaseName>/values.yaml     the one values file helm rendered with (files in order, then set)
 *   manifests/<releaseName>/...          the rendered output, one file per template
 *
 * and the images the charts deploy (the rendered output's containers and the
 * charts' image annotations), each with the releases that deploy it.
 * Everything here runs before pack resolves any image, so a chart that cannot
 * be fetched or rendered stops the pack before any layer is downloaded.
 */
export interface ChartStageOptions {
  charts: ChartSpec[];
  helm: Helm;
  /** Pack's work folder (pack removes it at the end, also on failure). */
  workDir: string;
  transport: HttpTransport;
  caFile?: string;
  /** Pack's registry clients: the same auth, mirrors, CA and --plain-http as images. */
  registryClient: (registry: string) => RegistryClient;
  /** The first path components under manifests/ the manifests sources use; a release name may not be one. */
  manifestFolders: Set<string>;
  logger: Logger;
  /** The shared git fetcher for git chart sources; without it a git chart is exit 2. */
  fetchGitFolder?: ChartFetchOptions['fetchGitFolder'];
}

export interface PackedChart {
  spec: ChartSpec;
  fetched: FetchedChart;
  releaseName: string;
  namespace: string;
  values: BundleFile;
  rendered: RenderedChart;
}

export interface ChartImageSource {
  /** The reference as the chart writes it. */
  text: string;
  /** "manifests/<release>/...: Deployment/x containers[0]" or the annotation. */
  where: string;
  releaseName: string;
}

export async function prepareCharts(options: ChartStageOptions): Promise<PackedChart[]> {
  const { charts, logger } = options;
  if (charts.length === 0) return [];
  // Names the spec already fixes are checked before anything is fetched.
  checkReleaseNames(
    charts.map((c) => defaultReleaseName(c)),
    charts,
    options.manifestFolders,
  );

  // Without a git fetcher, say so before anything is fetched.
  const git = charts.find((c) => c.source.kind === 'git');
  if (git !== undefined && options.fetchGitFolder === undefined) {
    throw new UsageError(`${git.where}: git chart sources are not available in this version of airlock`, {
      hint: 'use a path source on a checkout of the repository, or publish the chart to a chart repository or OCI registry',
    });
  }

  const workDir = join(options.workDir, 'charts-stage');
  await mkdir(workDir, { recursive: true });
  const fetched = await fetchCharts(
    charts.map((c) => c.source),
    {
      workDir,
      transport: options.transport,
      ...(options.caFile !== undefined ? { caFile: options.caFile } : {}),
      registryClient: options.registryClient,
      onLog: (m) => logger.warn(m),
      ...(options.fetchGitFolder !== undefined ? { fetchGitFolder: options.fetchGitFolder } : {}),
    },
  );
  const releaseNames = charts.map((c, i) => c.releaseName ?? fetched[i]!.name);
  checkReleaseNames(releaseNames, charts, options.manifestFolders);

  const out: PackedChart[] = [];
  for (const [i, spec] of charts.entries()) {
    const chart = fetched[i]!;
    const releaseName = releaseNames[i]!;
    const namespace = spec.namespace ?? releaseName;
    const label = `charts[${i}] ${chart.name} ${chart.version} (${spec.where})`;
    for (const line of chart.added) logger.info(`${label}: added ${line}`);

    // One values file: exactly what helm renders with, and what the bundle carries.
    const valuesDir = join(workDir, 'values', String(i));
    await mkdir(valuesDir, { recursive: true });
    const valuesFile = join(valuesDir, 'values.yaml');
    const merged = await mergeValuesFiles(spec.values, spec.set, valuesFile, label);
    const rendered = await renderChart(
      {
        chart: chart.archive.file,
        label,
        releaseName,
        namespace,
        values: [valuesFile],
        maskValues: Object.values(spec.set).filter((v): v is string => typeof v === 'string'),
        ...(spec.kubeVersion !== undefined ? { kubeVersion: spec.kubeVersion } : {}),
        ...(spec.apiVersions !== undefined ? { apiVersions: spec.apiVersions } : {}),
      },
      { helm: options.helm, workDir },
    );
    // With gitops: helmrelease, Helm renders in the cluster: the advice to use it is noise.
    const advice = new Set(spec.gitops === 'helmrelease' ? findingMessages(label, rendered.findings) : []);
    for (const w of rendered.warnings) if (!advice.has(w)) logger.warn(w);
    logger.info(`${label}: rendered by helm ${rendered.helmVersion} as release ${releaseName} in namespace ${namespace}: ${rendered.files.length} files, ${new Set(rendered.images.map((m) => m.image)).size} images`);
    out.push({
      spec,
      fetched: chart,
      releaseName,
      namespace,
      values: { path: `charts/${releaseName}/values.yaml`, file: valuesFile, size: merged.size, sha256: merged.sha256 },
      rendered,
    });
  }
  return out;
}

/** Release names: valid for the paths they name, unique, and not a manifests source's folder. */
function checkReleaseNames(names: (string | undefined)[], charts: ChartSpec[], manifestFolders: Set<string>): void {
  const seen = new Map<string, number>();
  names.forEach((name, i) => {
    if (name === undefined) return;
    const where = charts[i]!.where;
    const before = seen.get(name);
    if (before !== undefined) {
      throw new UsageError(`${where}: release name ${JSON.stringify(name)} is already used by the chart at ${charts[before]!.where}`, {
        hint: 'give each chart its own releaseName: each release has its own manifests/<releaseName>/ folder',
      });
    }
    seen.set(name, i);
    if (manifestFolders.has(name)) {
      throw new UsageError(`${where}: release name ${JSON.stringify(name)} is also the name of a manifests source (manifests/${name}/)`, {
        hint: 'set another releaseName for the chart, or rename the manifests folder or archive',
      });
    }
  });
}

/** Every image the charts name, for the image set (when discoverImages is on). */
export function chartImageSources(charts: PackedChart[]): ChartImageSource[] {
  return charts.flatMap((c) => c.rendered.images.map((m) => ({ text: m.image, where: `${m.where} (chart ${m.chart})`, releaseName: c.releaseName })));
}

/** Canonical image reference ("docker.io/library/nginx:1.25") -> the release names of the charts that deploy it. */
export function chartsByImage(charts: PackedChart[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const s of chartImageSources(charts)) {
    let canonical: string;
    try {
      canonical = formatReference(withDefaultTag(parseReference(s.text)));
    } catch {
      continue; // Not a reference: the image set names it when discovery is on.
    }
    const list = out.get(canonical) ?? [];
    if (!list.includes(s.releaseName)) list.push(s.releaseName);
    out.set(canonical, list);
  }
  return out;
}

/** What the charts add to the bundle: files, airlock.json's charts, and the artifacts' blobs, manifests and names. */
export function chartBundleContent(charts: PackedChart[]): {
  files: BundleFile[];
  index: BundleChart[];
  blobs: Descriptor[];
  manifests: Descriptor[];
  refs: { ref: string; descriptor: Descriptor }[];
} {
  const refs = new Map<string, Descriptor>();
  const blobs = new Map<string, Descriptor>();
  const manifests = new Map<string, Descriptor>();
  for (const c of charts) {
    const { artifact } = c.fetched;
    const ref = `charts/${c.fetched.name}:${c.fetched.version}`;
    const known = refs.get(ref);
    if (known !== undefined && known.digest !== artifact.manifest.descriptor.digest) {
      throw new UsageError(`${c.spec.where}: two different charts are both ${c.fetched.name} ${c.fetched.version} (${known.digest} and ${artifact.manifest.descriptor.digest})`, {
        hint: 'one bundle carries one chart per name and version: pack the other in another bundle',
      });
    }
    refs.set(ref, artifact.manifest.descriptor);
    for (const b of [artifact.config, ...artifact.layers]) blobs.set(b.descriptor.digest, b.descriptor);
    manifests.set(artifact.manifest.descriptor.digest, artifact.manifest.descriptor);
  }
  return {
    files: charts.flatMap((c) => [...c.rendered.files, c.values]),
    index: charts.map((c) => ({
      name: c.fetched.name,
      version: c.fetched.version,
      digest: c.fetched.artifact.manifest.descriptor.digest,
      mediaType: c.fetched.artifact.manifest.descriptor.mediaType,
      source: c.fetched.source,
      releaseName: c.releaseName,
      namespace: c.namespace,
      gitops: c.spec.gitops,
      values: c.values.path,
      manifests: `manifests/${c.releaseName}/`,
      images: [...new Set(c.rendered.images.map((m) => m.image))],
      ...(c.spec.kubeVersion !== undefined ? { kubeVersion: c.spec.kubeVersion } : {}),
      ...(c.spec.apiVersions !== undefined ? { apiVersions: c.spec.apiVersions } : {}),
    })),
    blobs: [...blobs.values()],
    manifests: [...manifests.values()],
    refs: [...refs].map(([ref, descriptor]) => ({ ref, descriptor })),
  };
}

/** Copy every chart artifact into the bundle with copyGraph (each blob checked against its digest as it streams). */
export async function copyCharts(charts: PackedChart[], sink: ContentSink, session: CopySession): Promise<void> {
  await session.all(charts, async (c) => {
    await copyGraph(new ChartArtifactContent(c.fetched.artifact), sink, c.fetched.artifact.manifest.descriptor, { session });
  });
}
