/**
 * Helm charts as OCI artifacts (helm/helm pkg/registry): a plain image
 * manifest whose config is Chart.yaml's metadata as JSON and whose one layer
 * is the chart archive, plus a provenance layer when one was pushed.
 */
import { limitDepth, underPrefix } from './mapping.ts';

export const HelmMediaType = {
  config: 'application/vnd.cncf.helm.config.v1+json',
  chart: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip',
  /** Accepted on pull, as Helm does; never written. */
  legacyChart: 'application/tar+gzip',
  provenance: 'application/vnd.cncf.helm.chart.provenance.v1.prov',
} as const;

export function isHelmChartLayer(mediaType: string): boolean {
  return mediaType === HelmMediaType.chart || mediaType === HelmMediaType.legacyChart;
}

/** The OCI tag of a chart version: "+" is not allowed in tags, so Helm writes "_". */
export function chartVersionToTag(version: string): string {
  return version.replace(/\+/g, '_');
}

/** The chart version a tag stands for ("1.0.0_build.1" -> "1.0.0+build.1"). */
export function tagToChartVersion(tag: string): string {
  return tag.replace(/_/g, '+');
}

/**
 * Where a chart lives in the enclave registry (DESIGN.md §6):
 * [PREFIX/]charts/NAME, tagged with chartVersionToTag(version), so that
 * `helm pull oci://REGISTRY/PREFIX/charts/NAME --version VERSION` finds it.
 */
export function internalChartRepository(name: string, prefix = '', mapDepth?: number): string {
  return underPrefix(prefix, limitDepth(`charts/${name}`, mapDepth));
}
