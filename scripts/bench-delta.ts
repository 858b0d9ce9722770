/**
 * The Harness upgrade, for npm run bench (scripts/bench.ts calls it): release
 * 1 is the Harness shape; in release 2 a third of the images move to new tags
 * on new base layers, the rest are unchanged. Measured, once each: release 2
 * packed full and as a delta (--since the release-1 bundle), and each loaded
 * into an enclave that holds release 1. Reported: both bundles' bytes against
 * the bytes of the blobs the enclave lacks (target: the delta within 2% +
 * 1 MiB of them), pack and load times, and that the delta load uploaded no
 * release-1 blob (counted in the registry's access log).
 */
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatBytes } from '../shared/cli/progress.ts';
import { formatReference, type ImageReference } from '../shared/oci/reference.ts';
import { generateImages, pushImages, type ImageSpec, type SyntheticImage } from '../test/services/fixtures.ts';
import { startRegistry, type RegistryService } from '../test/services/registry.ts';

export interface UpgradeWorkload {
  refs: ImageReference[];
  specs: ImageSpec[];
  baseLayerSize: number;
}

export interface DeltaBenchOptions {
  workload: UpgradeWorkload;
  dir: string;
  key: string;
  pub: string;
  jobs: number;
  /** Runs the airlock CLI; seconds it took. */
  airlock: (args: string[]) => Promise<{ seconds: number; stdout: string }>;
  say: (line: string) => void;
}

const SEED = 2026;
const MOVED_TAG_SUFFIX = '-r2';

/** Release 2: every third image on a new tag, built on new base layers (another seed); the others as in release 1. */
function release2(w: UpgradeWorkload): { refs: ImageReference[]; unchanged: ImageSpec[]; moved: ImageSpec[] } {
  const refs: ImageReference[] = [];
  const unchanged: ImageSpec[] = [];
  const moved: ImageSpec[] = [];
  w.refs.forEach((ref, i) => {
    const spec = w.specs[i]!;
    if (i % 3 === 0) {
      refs.push({ ...ref, tag: `${ref.tag!}${MOVED_TAG_SUFFIX}` });
      moved.push({ ...spec, tag: `${spec.tag}${MOVED_TAG_SUFFIX}` });
    } else {
      refs.push(ref);
      unchanged.push(spec);
    }
  });
  return { refs, unchanged, moved };
}

function blobBytes(images: SyntheticImage[]): Map<string, number> {
  const blobs = new Map<string, number>();
  for (const img of images) for (const b of img.blobs) blobs.set(b.digest, b.size);
  return blobs;
}

async function uploadedDigests(registry: RegistryService): Promise<Set<string>> {
  const puts = await registry.requests(/^PUT \/v2\/.*\/blobs\/uploads\//);
  return new Set(puts.map((r) => decodeURIComponent(/[?&]digest=([^&\s]+)/.exec(r)?.[1] ?? '')).filter((d) => d !== ''));
}

export async function benchDelta(o: DeltaBenchOptions): Promise<void> {
  const { workload: w, dir, say } = o;
  await mkdir(dir, { recursive: true });
  const r2 = release2(w);
  const r1Images = await generateImages({ seed: SEED, baseLayerSize: w.baseLayerSize, images: w.specs });
  const movedImages = await generateImages({ seed: SEED + 1, baseLayerSize: w.baseLayerSize, images: r2.moved });
  const r1Blobs = blobBytes(r1Images);
  const r2Blobs = blobBytes([...r1Images.filter((_, i) => i % 3 !== 0), ...movedImages]);
  const lacking = [...r2Blobs].filter(([d]) => !r1Blobs.has(d));
  const lackingBytes = lacking.reduce((a, [, n]) => a + n, 0);

  const source = await startRegistry();
  const enclaves: RegistryService[] = [];
  try {
    await pushImages(source.url, [...r1Images, ...movedImages], { concurrency: 8 });
    const mirrors = [...new Set(w.refs.map((r) => r.registry))].flatMap((r) => ['--registry-mirror', `${r}=${source.url}`]);
    const spec = async (name: string, version: string, refs: ImageReference[]) => {
      await writeFile(join(dir, `${name}.txt`), refs.map((r) => formatReference(r)).join('\n') + '\n');
      await writeFile(join(dir, `${name}.yaml`), `name: bench\nversion: "${version}"\nimageLists: [${name}.txt]\n`);
      return join(dir, `${name}.yaml`);
    };
    const pack = (specFile: string, out: string, extra: string[] = []) =>
      o.airlock(['pack', '-f', specFile, '-o', out, '--key', o.key, '--jobs', String(o.jobs), ...mirrors, '--json', ...extra]);
    const load = (bundle: string, into: RegistryService) =>
      o.airlock(['load', bundle, '--key', o.pub, '--registry', into.host, '--plain-http', '--jobs', String(o.jobs), '--json']);

    // Release 1, loaded into two enclaves: one takes the full release 2, the other the delta.
    const r1 = join(dir, 'release1.tar');
    await pack(await spec('release1', '1', w.refs), r1);
    for (let i = 0; i < 2; i++) {
      const e = await startRegistry();
      enclaves.push(e);
      await load(r1, e);
    }
    const r2Spec = await spec('release2', '2', r2.refs);
    const full = join(dir, 'release2-full.tar');
    const delta = join(dir, 'release2-delta.tar');
    const packFull = await pack(r2Spec, full);
    const packDelta = await pack(r2Spec, delta, ['--since', r1]);
    const fullBytes = (await stat(full)).size;
    const deltaBytes = (await stat(delta)).size;
    const loadFull = await load(full, enclaves[0]!);
    const before = await uploadedDigests(enclaves[1]!);
    const loadDelta = await load(delta, enclaves[1]!);
    const reuploaded = [...(await uploadedDigests(enclaves[1]!))].filter((d) => !before.has(d) && r1Blobs.has(d));

    const budget = lackingBytes * 1.02 + 1024 * 1024;
    say(`\n## Harness upgrade: ${w.refs.length} images, ${r2.moved.length} on new tags and new base layers; the enclave lacks ${lacking.length} blobs (${formatBytes(lackingBytes)})\n`);
    say('| release 2 bundle | bytes | / lacking blobs | pack | load into the release-1 enclave |');
    say('|---|---|---|---|---|');
    const row = (name: string, bytes: number, p: number, l: number) =>
      say(`| ${name.padEnd(24)} | ${formatBytes(bytes).padStart(10)} | ${(bytes / lackingBytes).toFixed(3).padStart(7)}x | ${p.toFixed(2).padStart(6)} s | ${l.toFixed(2).padStart(6)} s |`);
    row('full', fullBytes, packFull.seconds, loadFull.seconds);
    row('delta (--since bundle)', deltaBytes, packDelta.seconds, loadDelta.seconds);
    say(
      `\ndelta ${formatBytes(deltaBytes)} vs budget ${formatBytes(budget)} (lacking blobs + 2% + 1 MiB): ${deltaBytes <= budget ? 'within' : 'OVER'}; ` +
        `overhead ${formatBytes(deltaBytes - lackingBytes)} (manifests of all ${w.refs.length} images, tar headers, index); ` +
        `release-1 blobs uploaded again by the delta load: ${reuploaded.length}`,
    );
  } finally {
    for (const e of enclaves) await e.stop();
    await source.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
