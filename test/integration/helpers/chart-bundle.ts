import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BundleWriter, type BundleFile } from '../../../shared/bundle/writer.ts';
import type { BundleChart, BundleImage, ChartGitops } from '../../../shared/bundle/format.ts';
import type { Descriptor } from '../../../shared/oci/descriptor.ts';
import { VerifyingStream } from '../../../shared/oci/digest.ts';
import { MediaType } from '../../../shared/oci/mediatype.ts';
import { buildChartArtifact, ChartArtifactContent, type ChartArtifact } from '../../../packer/sources/charts/artifact.ts';
import { parseChartYaml } from '../../../packer/sources/charts/metadata.ts';
import type { Helm } from '../../../packer/helm/helm.ts';
import { renderChart } from '../../../packer/helm/render.ts';
import { run } from '../../services/exec.ts';
import { openBlob, type SyntheticImage } from '../../services/fixtures.ts';

/**
 * A bundle with Helm charts as `airlock pack` lays it out (shared/bundle/format.ts
 * BundleChart), built here from the packer's own building blocks until pack
 * writes such bundles: each chart rendered by the real helm with its values,
 * its artifact (buildChartArtifact) in oci/ named charts/NAME:VERSION, its
 * values under charts/<release>/values.yaml and its rendered output under
 * manifests/<release>/; plus synthetic images under the names the charts
 * render.
 */
export interface ChartInBundle {
  /** The chart archive (.tgz). */
  archive: string;
  releaseName: string;
  namespace: string;
  gitops: ChartGitops;
  /** The values the chart is rendered with (written as the bundle's values entry). */
  values: string;
}

export interface ChartBundleOptions {
  out: string;
  /** Scratch folder for renders and artifacts. */
  work: string;
  name: string;
  version: string;
  charts: ChartInBundle[];
  /** Synthetic images, each under the full reference the charts render. */
  images: { ref: string; image: SyntheticImage }[];
  helm: Helm;
  sign: (indexBytes: Buffer) => string;
}

export interface ChartBundle {
  charts: BundleChart[];
  images: BundleImage[];
  artifacts: Map<string, ChartArtifact>;
}

export async function writeChartBundle(o: ChartBundleOptions): Promise<ChartBundle> {
  const files: BundleFile[] = [];
  const charts: BundleChart[] = [];
  const artifacts = new Map<string, ChartArtifact>();
  const usedBy = new Map<string, string[]>();
  for (const [i, c] of o.charts.entries()) {
    const dir = join(o.work, `chart-${i}`);
    mkdirSync(dir, { recursive: true });
    const valuesFile = join(dir, 'values.yaml');
    writeFileSync(valuesFile, c.values);
    const rendered = await renderChart({ chart: c.archive, releaseName: c.releaseName, namespace: c.namespace, values: [valuesFile] }, { helm: o.helm, workDir: dir });
    const chartYamlPath = (await run('tar', ['-tzf', c.archive])).stdout.split('\n').find((p) => /^[^/]+\/Chart\.yaml$/.test(p))!;
    const meta = parseChartYaml((await run('tar', ['-xzOf', c.archive, chartYamlPath])).stdout, c.archive);
    const artifact = await buildChartArtifact(c.archive, meta.raw, dir);
    artifacts.set(c.releaseName, artifact);
    files.push(...rendered.files, fileOf(`charts/${c.releaseName}/values.yaml`, valuesFile));
    const images = [...new Set(rendered.images.map((x) => x.image))];
    for (const image of images) {
      const ref = o.images.find((x) => x.ref === image || x.ref === `docker.io/library/${image}` || x.ref === `docker.io/${image}`)?.ref;
      if (!ref) throw new Error(`the test gives no image for ${image} (chart ${meta.name})`);
      usedBy.set(ref, [...(usedBy.get(ref) ?? []), c.releaseName]);
    }
    charts.push({
      name: meta.name,
      version: meta.version,
      digest: artifact.manifest.descriptor.digest,
      mediaType: MediaType.ociManifest,
      source: `test ${c.archive.split('/').pop()!}`,
      releaseName: c.releaseName,
      namespace: c.namespace,
      gitops: c.gitops,
      values: `charts/${c.releaseName}/values.yaml`,
      manifests: `manifests/${c.releaseName}/`,
      images,
    });
  }

  const images: BundleImage[] = o.images.map((x) => ({
    ref: x.ref,
    digest: x.image.digest,
    mediaType: x.image.mediaType,
    platforms: ['linux/amd64'],
    ...(usedBy.has(x.ref) ? { charts: usedBy.get(x.ref)! } : {}),
  }));
  const uniqueArtifacts = [...new Map([...artifacts.values()].map((a) => [a.manifest.descriptor.digest, a])).values()];
  const blobs = new Map<string, Descriptor>();
  for (const x of o.images) for (const b of x.image.blobs) blobs.set(b.digest, b);
  for (const a of uniqueArtifacts) for (const b of [a.config, ...a.layers]) blobs.set(b.descriptor.digest, b.descriptor);
  const manifests: Descriptor[] = [
    ...o.images.map((x) => ({ mediaType: x.image.mediaType, digest: x.image.digest, size: x.image.size })),
    ...uniqueArtifacts.map((a) => a.manifest.descriptor),
  ];
  const writer = await BundleWriter.create(
    o.out,
    {
      name: o.name,
      version: o.version,
      created: new Date('2026-12-01T00:00:00Z'),
      platforms: ['linux/amd64'],
      images,
      charts,
      files,
      blobs: [...blobs.values()],
      manifests,
      refs: [
        ...o.images.map((x) => ({ ref: x.ref, descriptor: { mediaType: x.image.mediaType, digest: x.image.digest, size: x.image.size } })),
        ...uniqueArtifacts.map((a) => {
          const c = charts.find((c) => c.digest === a.manifest.descriptor.digest)!;
          return { ref: `charts/${c.name}:${c.version}`, descriptor: a.manifest.descriptor };
        }),
      ],
    },
    o.sign,
  );
  for (const f of files) await writer.writeFile(f);
  const synthetic = o.images.map((x) => x.image);
  for (const x of o.images) {
    for (const b of x.image.blobs) if (!(await writer.exists(b))) await writer.push(b, openBlob(synthetic, b.digest).pipe(new VerifyingStream(b, 'test blob')));
    const desc = { mediaType: x.image.mediaType, digest: x.image.digest, size: x.image.size };
    if (!(await writer.exists(desc))) await writer.push(desc, Readable.from([x.image.manifest]).pipe(new VerifyingStream(desc, 'test manifest')));
  }
  for (const a of uniqueArtifacts) {
    const content = new ChartArtifactContent(a);
    for (const d of [a.config.descriptor, ...a.layers.map((l) => l.descriptor), a.manifest.descriptor]) {
      if (!(await writer.exists(d))) await writer.push(d, await content.fetch(d));
    }
  }
  await writer.commit();
  return { charts, images, artifacts };
}

function fileOf(path: string, file: string): BundleFile {
  const bytes = readFileSync(file);
  return { path, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), file };
}
