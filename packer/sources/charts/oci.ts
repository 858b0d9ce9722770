import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { AirlockError, RemoteError, UsageError, VerificationError } from '../../../shared/cli/errors.ts';
import type { Descriptor } from '../../../shared/oci/descriptor.ts';
import { chartVersionToTag, HelmMediaType, isHelmChartLayer, tagToChartVersion } from '../../../shared/oci/helm.ts';
import { parseManifest } from '../../../shared/oci/mediatype.ts';
import { parseReference } from '../../../shared/oci/reference.ts';
import { MAX_CHART_ARCHIVE_BYTES } from './archive.ts';
import type { ArtifactBlob, ChartArtifact } from './artifact.ts';
import type { ChartFetchContext } from './context.ts';
import type { DownloadedChart } from './repo.ts';
import { highestMatch, isExactVersion, parseConstraint } from './version.ts';

/**
 * Charts in OCI registries (`oci://host/path/name`, Helm 3.8+), pulled through
 * the packer's RegistryClient: the same auth, mirrors, CA and plain HTTP as
 * images. The tag is the version with "+" written "_"; a range is resolved
 * against the repository's tags. The manifest, config and layers are kept as
 * pulled, so a chart that needs nothing added travels as the very artifact
 * the registry holds (same digests).
 */
export interface OciChartRef {
  /** "registry.example.com", "127.0.0.1:5000" */
  registry: string;
  /** "charts/harness-delegate-ng": the last component is the chart's name. */
  repository: string;
}

export interface PulledChart extends DownloadedChart {
  /** The artifact exactly as the registry holds it. */
  artifact: ChartArtifact;
  /** The version the tag stands for. */
  version: string;
}

const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/** "oci://host[:port]/path/name" (the chart's own reference). */
export function parseOciChartUrl(text: string, from: string): OciChartRef {
  if (!text.startsWith('oci://')) throw new UsageError(`${from}: ${JSON.stringify(text)} does not start with oci://`);
  const rest = text.slice('oci://'.length).replace(/\/+$/, '');
  let ref;
  try {
    ref = parseReference(rest);
  } catch (err) {
    throw new UsageError(`${from}: ${JSON.stringify(text)} is not an OCI chart reference: ${(err as Error).message}`, {
      hint: 'write oci://REGISTRY/PATH/CHART-NAME and the version on its own (version: 1.0.32)',
    });
  }
  if (ref.tag !== undefined || ref.digest !== undefined || !rest.includes('/')) {
    throw new UsageError(`${from}: ${JSON.stringify(text)}: name the registry and the chart's repository, without a tag (the version goes in version:)`);
  }
  return { registry: ref.registry, repository: ref.repository };
}

/** The chart `name` under a dependency's `oci://host/path` repository. */
export function ociDependencyRef(repository: string, name: string, from: string): OciChartRef {
  return parseOciChartUrl(`${repository.replace(/\/+$/, '')}/${name}`, from);
}

/** Pull `ref` at `version` (exact or a range) into `dir`. */
export async function pullOciChart(ref: OciChartRef, version: string, dir: string, ctx: ChartFetchContext, from: string): Promise<PulledChart> {
  const client = ctx.options.registryClient(ref.registry);
  const shown = `oci://${ref.registry}/${ref.repository}`;
  let chosen = version.trim();
  if (!isExactVersion(version)) {
    const constraint = parseConstraint(version, from);
    const tags = await client.listTags(ref.repository);
    const match = highestMatch(tags.map(tagToChartVersion), constraint);
    if (match === undefined) {
      throw new RemoteError(`${from}: no tag of ${shown} is a version matching ${JSON.stringify(version)}${tags.length === 0 ? ' (the repository has no tags)' : ''}`, {
        hint: 'change the version, or check the chart reference',
      });
    }
    chosen = match;
  }
  const tag = chartVersionToTag(chosen);
  const what = `${from}: ${shown}:${tag}`;
  const got = await client.getManifest(ref.repository, tag);
  if (got === undefined) {
    throw new RemoteError(`${what}: not found`, { hint: `check the chart reference and version (helm pull ${shown} --version ${chosen})` });
  }
  const parsed = parseManifest(got.bytes, got.descriptor.mediaType, what);
  if (!parsed.manifest) throw new VerificationError(`${what}: an index, not a chart manifest`, { hint: 'push the chart with helm push' });
  const m = parsed.manifest;
  if (m.config.mediaType !== HelmMediaType.config) {
    throw new VerificationError(`${what}: the config is ${m.config.mediaType}, not a Helm chart config (${HelmMediaType.config})`, { hint: 'this reference is not a Helm chart' });
  }
  const charts = m.layers.filter((l) => isHelmChartLayer(l.mediaType));
  const others = m.layers.filter((l) => !isHelmChartLayer(l.mediaType) && l.mediaType !== HelmMediaType.provenance);
  if (charts.length !== 1 || others.length > 0 || m.layers.filter((l) => l.mediaType === HelmMediaType.provenance).length > 1) {
    throw new VerificationError(`${what}: a chart has one chart layer and at most one provenance layer; this one has ${m.layers.map((l) => l.mediaType).join(', ') || 'no layers'}`);
  }
  if (m.config.size > MAX_CONFIG_BYTES) throw new VerificationError(`${what}: a config of ${m.config.size} bytes is not a chart's`);
  if (charts[0]!.size > MAX_CHART_ARCHIVE_BYTES) throw new VerificationError(`${what}: a chart archive of ${charts[0]!.size} bytes is over the ${MAX_CHART_ARCHIVE_BYTES}-byte cap`);
  const name = ref.repository.split('/').pop()!;
  const base = `${name}-${tag}`.replace(/[^A-Za-z0-9._-]/g, '_');
  const config = await pullBlob(ref, m.config, join(dir, `${base}.config.json`), ctx, what);
  const layers: ArtifactBlob[] = [];
  for (const l of m.layers) {
    const ext = isHelmChartLayer(l.mediaType) ? 'tgz' : 'prov';
    layers.push(await pullBlob(ref, l, join(dir, `${base}.${ext}`), ctx, what));
  }
  const chartLayer = layers.find((l) => isHelmChartLayer(l.descriptor.mediaType))!;
  return {
    file: chartLayer.file,
    sha256: chartLayer.descriptor.digest.slice('sha256:'.length),
    size: chartLayer.descriptor.size,
    origin: `${shown}:${tag}`,
    version: chosen,
    artifact: { manifest: { descriptor: got.descriptor, bytes: got.bytes }, config, layers },
  };
}

async function pullBlob(ref: OciChartRef, desc: Descriptor, file: string, ctx: ChartFetchContext, what: string): Promise<ArtifactBlob> {
  if (!desc.digest.startsWith('sha256:')) throw new VerificationError(`${what}: blob digest ${desc.digest} is not sha256`);
  const client = ctx.options.registryClient(ref.registry);
  try {
    await pipeline(client.fetchBlob(ref.repository, desc), createWriteStream(file, { flags: 'wx' }));
  } catch (err) {
    await rm(file, { force: true });
    if (err instanceof AirlockError) throw err;
    throw new RemoteError(`${what}: cannot download blob ${desc.digest}: ${(err as Error).message}`, { cause: err });
  }
  return { descriptor: desc, file };
}
