import { UsageError, VerificationError } from '../shared/cli/errors.ts';
import type { BundleChart } from '../shared/bundle/format.ts';
import type { BundleFileScan } from '../shared/bundle/file.ts';
import { chartVersionToTag, internalChartRepository } from '../shared/oci/helm.ts';
import { isManifest } from '../shared/oci/mediatype.ts';
import { entrySizes, rootDescriptor, type Target } from './targets.ts';

/**
 * The bundle's Helm charts as push targets: each chart artifact (its manifest
 * `digest`, with its config and chart layer) to
 * REGISTRY[/PREFIX]/charts/NAME:VERSION, a "+" in the version written "_" as
 * Helm does. A chart deployed by two releases is pushed once. The push goes
 * through the same preflight, tag policy and copy session as the images.
 */
export interface ChartTarget extends Target {
  kind: 'chart';
  chart: { name: string; version: string; releases: string[] };
}

/** One path component of an OCI repository name (distribution's grammar). */
const REPOSITORY_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

export function chartTargets(scan: BundleFileScan, prefix: string, name: string, images: readonly Target[], mapDepth?: number): ChartTarget[] {
  const sizes = entrySizes(scan);
  const byVersion = new Map<string, ChartTarget>();
  const releases = new Map<string, BundleChart>();
  for (const c of scan.index.charts) {
    const label = `chart ${c.name} ${c.version} (release ${c.releaseName})`;
    const other = releases.get(c.releaseName);
    if (other) throw new VerificationError(`${name}: two charts have the release name ${c.releaseName} (${other.name} and ${c.name})`, { hint: 'the bundle is malformed; pack it again' });
    releases.set(c.releaseName, c);
    if (!REPOSITORY_COMPONENT.test(c.name)) {
      throw new UsageError(`${name}: ${label}: the chart name cannot be an OCI repository name (lower-case letters, digits, and . _ - between them)`, {
        hint: 'Helm cannot keep such a chart in an OCI registry either; rename the chart and pack again',
      });
    }
    const tag = chartVersionToTag(c.version);
    if (!TAG.test(tag)) throw new UsageError(`${name}: ${label}: the version gives the tag ${JSON.stringify(tag)}, which an OCI registry does not accept`);
    if (!isManifest(c.mediaType)) throw new VerificationError(`${name}: ${label}: the artifact's media type ${c.mediaType} is not an image manifest`, { hint: 'the bundle is malformed; pack it again' });
    const key = `${c.name}:${tag}`;
    const seen = byVersion.get(key);
    if (seen) {
      if (seen.root.digest !== c.digest) {
        throw new VerificationError(`${name}: chart ${c.name} ${c.version} appears twice with different content (${seen.root.digest} and ${c.digest})`, {
          hint: 'the bundle is malformed; pack it again',
        });
      }
      seen.chart.releases.push(c.releaseName);
      continue;
    }
    byVersion.set(key, {
      kind: 'chart',
      source: `charts/${c.name}:${c.version}`,
      repository: internalChartRepository(c.name, prefix, mapDepth),
      tag,
      root: rootDescriptor(sizes, name, label, c.mediaType, c.digest),
      chart: { name: c.name, version: c.version, releases: [c.releaseName] },
    });
  }
  const targets = [...byVersion.values()];
  const clash = targets.filter((t) => images.some((i) => i.repository === t.repository));
  if (clash.length > 0) {
    throw new UsageError(`${name}: images and charts would share enclave repositories: ${clash.map((t) => t.repository).join(', ')}`, {
      hint: 'charts go to charts/NAME under the registry prefix; an image named like that cannot be loaded next to them',
    });
  }
  return targets;
}
