import { createReadStream } from 'node:fs';
import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import type { Descriptor } from '../../../shared/oci/descriptor.ts';
import { digestOf, VerifyingStream } from '../../../shared/oci/digest.ts';
import { HelmMediaType } from '../../../shared/oci/helm.ts';
import { MediaType } from '../../../shared/oci/mediatype.ts';
import type { ContentSource } from '../../../shared/store/store.ts';
import { hashFile } from './archive.ts';

/**
 * A chart archive as Helm's OCI artifact (helm/helm pkg/registry), ready for
 * the bundle: the config blob (Chart.yaml's metadata as Helm marshals it),
 * the archive as the one chart layer (a provenance layer after it when there
 * is one), and the image manifest with Helm's annotations, each with its
 * descriptor and a local file (the manifest as bytes). Nothing depends on
 * the clock: the same chart gives the same manifest digest every time
 * (Helm's `org.opencontainers.image.created` is left out unless given).
 */
export interface ArtifactBlob {
  descriptor: Descriptor;
  /** Local file holding exactly the blob's bytes. */
  file: string;
}

export interface ChartArtifact {
  manifest: { descriptor: Descriptor; bytes: Buffer };
  config: ArtifactBlob;
  /** The chart layer first, then a provenance layer when there is one. */
  layers: ArtifactBlob[];
}

export interface BuildArtifactOptions {
  /** A provenance file (.prov) to carry as its own layer. */
  provenanceFile?: string;
  /** An `org.opencontainers.image.created` value to record (RFC 3339); none by default. */
  created?: string;
}

/**
 * Build the artifact for `archive`, whose Chart.yaml (parsed) is `chartYaml`.
 * The config is written into `dir`; the layer is the archive file itself.
 */
export async function buildChartArtifact(archive: string, chartYaml: Record<string, unknown>, dir: string, options: BuildArtifactOptions = {}): Promise<ChartArtifact> {
  const configBytes = chartConfigJson(chartYaml);
  const configFile = join(dir, 'config.json');
  await writeFile(configFile, configBytes);
  const config: ArtifactBlob = { descriptor: { mediaType: HelmMediaType.config, digest: digestOf(configBytes), size: configBytes.length }, file: configFile };
  const chart = await hashFile(archive);
  const layers: ArtifactBlob[] = [{ descriptor: { mediaType: HelmMediaType.chart, digest: `sha256:${chart.sha256}`, size: chart.size }, file: archive }];
  if (options.provenanceFile !== undefined) {
    const prov = await hashFile(options.provenanceFile);
    layers.push({ descriptor: { mediaType: HelmMediaType.provenance, digest: `sha256:${prov.sha256}`, size: prov.size }, file: options.provenanceFile });
  }
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: config.descriptor,
    layers: layers.map((l) => l.descriptor),
    annotations: manifestAnnotations(JSON.parse(configBytes.toString('utf8')) as HelmMetadata, options.created),
  };
  const bytes = Buffer.from(goJson(manifest));
  return { manifest: { descriptor: { mediaType: MediaType.ociManifest, digest: digestOf(bytes), size: bytes.length }, bytes }, config, layers };
}

/** Helm's chart.Metadata as JSON; only the fields Helm writes to the config blob. */
interface HelmMetadata {
  name?: string;
  home?: string;
  sources?: string[];
  version?: string;
  description?: string;
  maintainers?: { name?: string; email?: string; url?: string }[];
  annotations?: Record<string, string>;
}

/**
 * Chart.yaml's metadata as Helm marshals chart.Metadata (pkg/chart/v2
 * metadata.go): its fields in struct order, empty ones left out, strings
 * sanitized as Helm's loader does (whitespace becomes a space, unprintable
 * characters go), map keys sorted, and Go's escaping of <, > and &.
 */
export function chartConfigJson(raw: Record<string, unknown>): Buffer {
  const o: Record<string, unknown> = {};
  const str = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? sanitize(String(v)) : '');
  const strs = (v: unknown): string[] => (Array.isArray(v) ? v.map(str) : []);
  const put = (key: string, value: unknown) => {
    const empty = value === '' || value === false || value === undefined || (Array.isArray(value) && value.length === 0) || (isObject(value) && Object.keys(value).length === 0);
    if (!empty) o[key] = value;
  };
  put('name', str(raw.name));
  put('home', str(raw.home));
  put('sources', strs(raw.sources));
  put('version', str(raw.version));
  put('description', str(raw.description));
  put('keywords', strs(raw.keywords));
  put(
    'maintainers',
    (Array.isArray(raw.maintainers) ? raw.maintainers : []).filter(isObject).map((m) => {
      const out: Record<string, string> = {};
      for (const k of ['name', 'email', 'url']) if (str(m[k]) !== '') out[k] = str(m[k]);
      return out;
    }),
  );
  put('icon', str(raw.icon));
  put('apiVersion', str(raw.apiVersion));
  put('condition', str(raw.condition));
  put('tags', str(raw.tags));
  put('appVersion', str(raw.appVersion));
  put('deprecated', raw.deprecated === true);
  put('annotations', isObject(raw.annotations) ? sortedStrings(raw.annotations) : undefined);
  put('kubeVersion', str(raw.kubeVersion));
  put(
    'dependencies',
    (Array.isArray(raw.dependencies) ? raw.dependencies : []).filter(isObject).map((d) => {
      const out: Record<string, unknown> = { name: str(d.name) };
      if (str(d.version) !== '') out.version = str(d.version);
      out.repository = str(d.repository);
      if (str(d.condition) !== '') out.condition = str(d.condition);
      if (strs(d.tags).length > 0) out.tags = strs(d.tags);
      if (d.enabled === true) out.enabled = true;
      if (Array.isArray(d['import-values']) && d['import-values'].length > 0) out['import-values'] = sortKeysDeep(d['import-values']);
      if (str(d.alias) !== '') out.alias = str(d.alias);
      if (strs(d['depends-on']).length > 0) out['depends-on'] = strs(d['depends-on']);
      return out;
    }),
  );
  put('type', str(raw.type));
  return Buffer.from(goJson(o));
}

/** Helm's manifest annotations (pkg/registry chart.go), keys sorted as Go writes a map. */
function manifestAnnotations(meta: HelmMetadata, created: string | undefined): Record<string, string> {
  const a: Record<string, string> = {};
  const add = (key: string, value: string | undefined) => {
    if (value !== undefined && value.trim() !== '') a[key] = value;
  };
  add('org.opencontainers.image.description', meta.description);
  add('org.opencontainers.image.title', meta.name);
  add('org.opencontainers.image.version', meta.version);
  add('org.opencontainers.image.url', meta.home);
  add('org.opencontainers.image.created', created);
  add('org.opencontainers.image.source', meta.sources?.[0]);
  if (meta.maintainers && meta.maintainers.length > 0) {
    add('org.opencontainers.image.authors', meta.maintainers.map((m) => `${m.name ?? ''}${m.email ? ` (${m.email})` : ''}`).join(', '));
  }
  for (const [k, v] of Object.entries(meta.annotations ?? {})) {
    if (k === 'org.opencontainers.image.version' || k === 'org.opencontainers.image.title') continue;
    a[k] = v;
  }
  return sortedStrings(a);
}

/** Helm's sanitizeString: whitespace becomes " ", unprintable characters are dropped. */
function sanitize(s: string): string {
  return s.replace(/\s/gu, ' ').replace(/[^\p{L}\p{M}\p{N}\p{P}\p{S} ]/gu, '');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function sortedStrings(o: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(o).sort()) out[k] = typeof o[k] === 'string' ? (o[k] as string) : String(o[k]);
  return out;
}

function sortKeysDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeysDeep);
  if (isObject(v)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeysDeep(v[k]);
    return out;
  }
  return v;
}

/** JSON as Go's encoding/json writes it: compact, with <, >, &, U+2028 and U+2029 escaped. */
function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * The artifact as a content source for copyGraph: the manifest from memory,
 * the blobs from their files, each checked against its descriptor as it streams.
 */
export class ChartArtifactContent implements ContentSource {
  private readonly files = new Map<string, string>();

  constructor(private readonly artifact: ChartArtifact) {
    for (const b of [artifact.config, ...artifact.layers]) this.files.set(b.descriptor.digest, b.file);
  }

  async exists(desc: Descriptor): Promise<boolean> {
    if (desc.digest === this.artifact.manifest.descriptor.digest) return true;
    const file = this.files.get(desc.digest);
    if (file === undefined) return false;
    return access(file).then(
      () => true,
      () => false,
    );
  }

  fetch(desc: Descriptor): Promise<Readable> {
    const what = `chart blob ${desc.digest}`;
    if (desc.digest === this.artifact.manifest.descriptor.digest) {
      return Promise.resolve(pipeline(Readable.from([this.artifact.manifest.bytes]), new VerifyingStream(desc, what), () => undefined));
    }
    const file = this.files.get(desc.digest);
    if (file === undefined) return Promise.reject(new Error(`internal: the chart artifact has no blob ${desc.digest}`));
    return Promise.resolve(pipeline(createReadStream(file), new VerifyingStream(desc, what), () => undefined));
  }
}
