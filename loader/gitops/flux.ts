import { Document, isMap, parseDocument, type Node } from 'yaml';
import { UsageError } from '../../shared/cli/errors.ts';
import type { BundleChart } from '../../shared/bundle/format.ts';
import { chartVersionToTag, HelmMediaType, internalChartRepository } from '../../shared/oci/helm.ts';
import type { ImagePin } from './pins.ts';
import type { EnclaveRegistry } from '../../shared/oci/mapping.ts';

/**
 * A chart in `gitops: helmrelease` mode as the two Flux objects that install
 * it from the enclave registry (DESIGN.md §6):
 *
 *   OCIRepository (source.toolkit.fluxcd.io/v1)  oci://REGISTRY/PREFIX/charts/NAME,
 *                 ref.digest = the chart artifact's manifest digest, the Helm
 *                 chart layer selected and copied as it is; insecure when the
 *                 registry speaks plain HTTP
 *   HelmRelease   (helm.toolkit.fluxcd.io/v2)  chartRef to it, the release name
 *                 and namespace, the values the chart was rendered with inline,
 *                 and a kustomize post-renderer pinning every image name the
 *                 chart renders to its internal name by digest
 *
 * Both live in the release's namespace, named after the release. The YAML is
 * a function of its input only (fixed key order, no timestamps), so an
 * unchanged reload writes the same bytes.
 */
export interface FluxReleaseInput {
  chart: BundleChart;
  /** The bundle's values file of the chart (BundleChart.values). */
  values: Buffer;
  registry: EnclaveRegistry;
  /** The load used --plain-http: Flux must fetch the chart over plain HTTP too. */
  plainHttp: boolean;
  /** Every image name the chart renders, pinned. */
  pins: readonly ImagePin[];
  /** Bundle name and version, for the header comment. */
  bundle: { name: string; version: string };
}

/** How often Flux checks the source and the release against the cluster. */
export const FLUX_INTERVAL = '10m';

export function renderFluxRelease(input: FluxReleaseInput): { ociRepository: Buffer; helmRelease: Buffer } {
  const { chart: c, registry } = input;
  const repository = internalChartRepository(c.name, registry.prefix, registry.mapDepth);
  const header = ` Written by airlock load: ${input.bundle.name} ${input.bundle.version}, chart ${c.name} ${c.version}. Patch it in overlays, not here.`;

  const source = new Document({
    apiVersion: 'source.toolkit.fluxcd.io/v1',
    kind: 'OCIRepository',
    metadata: { name: c.releaseName, namespace: c.namespace },
    spec: {
      interval: FLUX_INTERVAL,
      url: `oci://${registry.host}/${repository}`,
      ref: { digest: c.digest },
      layerSelector: { mediaType: HelmMediaType.chart, operation: 'copy' },
      ...(input.plainHttp ? { insecure: true } : {}),
    },
  });
  source.commentBefore = `${header}\n ${registry.host}/${repository}:${chartVersionToTag(c.version)} is ${c.digest}.`;

  const values = chartValues(input.values, c);
  const release = new Document({
    apiVersion: 'helm.toolkit.fluxcd.io/v2',
    kind: 'HelmRelease',
    metadata: { name: c.releaseName, namespace: c.namespace },
    spec: {
      interval: FLUX_INTERVAL,
      releaseName: c.releaseName,
      targetNamespace: c.namespace,
      chartRef: { kind: 'OCIRepository', name: c.releaseName, namespace: c.namespace },
      ...(values ? { values: null } : {}),
      ...(input.pins.length > 0
        ? { postRenderers: [{ kustomize: { images: input.pins.map((p) => ({ name: p.name, newName: p.newName, digest: p.digest })) } }] }
        : {}),
    },
  });
  // The values node as parsed, so that the values keep their order, styles and comments.
  if (values) release.setIn(['spec', 'values'], values);
  release.commentBefore = header;

  return { ociRepository: yamlBytes(source), helmRelease: yamlBytes(release) };
}

/** The chart's values as a YAML map node, or undefined when there are none. */
function chartValues(bytes: Buffer, c: BundleChart): Node | undefined {
  const doc = parseDocument(bytes.toString('utf8'), { prettyErrors: false });
  const problem = doc.errors[0]?.message.split('\n')[0];
  if (problem) throw new UsageError(`chart ${c.name} (release ${c.releaseName}): its values ${c.values} are not valid YAML: ${problem}`, { hint: 'pack the bundle again' });
  const contents = doc.contents;
  if (contents === null || (isMap(contents) && contents.items.length === 0)) return undefined;
  if (!isMap(contents)) throw new UsageError(`chart ${c.name} (release ${c.releaseName}): its values ${c.values} are not a YAML map`, { hint: 'pack the bundle again' });
  return contents;
}

function yamlBytes(doc: Document): Buffer {
  return Buffer.from(doc.toString({ lineWidth: 0 }));
}
