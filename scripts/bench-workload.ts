/**
 * The bench's workloads (scripts/bench.ts, bench-huge.ts): synthetic images
 * pushed into a local registry, and the spec that packs them through
 * --registry-mirror.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatReference, type ImageReference } from '../shared/oci/reference.ts';
import { generateImages, pushImages, type ImageSpec } from '../test/services/fixtures.ts';
import type { RegistryService } from '../test/services/registry.ts';

export interface Workload {
  name: string;
  refs: ImageReference[];
  specs: ImageSpec[];
  baseLayerSize: number;
  /** Also measure the --jobs curve (and the profile, with BENCH_PROFILE=1). */
  jobsCurve?: boolean;
}

/** 8 images of 4 layers: one shared 32 MiB base and 3 unique layers each; about `mb` MiB in all. */
export function largerImages(mb: number): Workload {
  const count = 8;
  const layer = Math.round(((mb - 32) * 1024 * 1024) / (count * 3));
  const refs: ImageReference[] = Array.from({ length: count }, (_, i) => ({ registry: 'docker.io', repository: `bench/large-${i}`, tag: '1.0' }));
  return {
    name: `larger images (${count} images)`,
    refs,
    baseLayerSize: 32 * 1024 * 1024,
    specs: refs.map((r) => ({ repository: r.repository, tag: r.tag!, layers: 4, layerSize: layer, sharedBaseLayers: 1 })),
  };
}

export interface PublishedWorkload {
  /** Unique blobs and manifests, and their bytes. */
  count: number;
  bytes: number;
  /** airlock pack's arguments without -o and --jobs (the spec and key, the mirrors, --json). */
  packArgs: string[];
}

/** Generate the workload's images, push them into `registry`, and write the spec and image list into `dir`. */
export async function publishWorkload(w: Workload, registry: RegistryService, dir: string, key: string): Promise<PublishedWorkload> {
  const images = await generateImages({ seed: 2026, baseLayerSize: w.baseLayerSize, images: w.specs });
  await pushImages(registry.url, images, { concurrency: 8 });
  const unique = new Map<string, number>();
  for (const img of images) {
    unique.set(img.digest, img.size);
    for (const b of img.blobs) unique.set(b.digest, b.size);
    for (const c of img.children ?? []) unique.set(c.digest, c.size);
  }
  await writeFile(join(dir, 'images.txt'), w.refs.map((r) => formatReference(r)).join('\n') + '\n');
  await writeFile(join(dir, 'airlock.yaml'), `name: bench\nversion: "1.0"\nimageLists: [images.txt]\n`);
  const mirrors = [...new Set(w.refs.map((r) => r.registry))].flatMap((r) => ['--registry-mirror', `${r}=${registry.url}`]);
  return {
    count: unique.size,
    bytes: [...unique.values()].reduce((a, b) => a + b, 0),
    packArgs: ['pack', '-f', join(dir, 'airlock.yaml'), '--key', key, ...mirrors, '--json'],
  };
}

/** The `phases` of pack's --json result (docs/json-output.md), from its stdout. */
export function packPhases(stdout: string): Record<string, number> {
  const last = stdout.trim().split('\n').at(-1) ?? '{}';
  return (JSON.parse(last) as { phases?: Record<string, number> }).phases ?? {};
}
