/**
 * npm run bench: airlock's copy engine against skopeo and the machine's limits,
 * in the same run, on the Harness shape (the 201 references of Harness SMP
 * 0.44.1's image list as synthetic images with shared base layers).
 *
 * Measured, each RUNS times (median reported):
 *   airlock   copyGraph of all 201 images registry -> one OCI layout (--jobs)
 *   skopeo    `skopeo copy docker://... oci:DIR:REF` image by image (what users script today)
 *   sha256    `openssl dgst -sha256` over every blob of the layout (the hashing limit)
 *   disk      `cp -r` of the layout's blobs (the disk limit)
 *
 * Environment: BENCH_RUNS (default 3), BENCH_JOBS (default 16), BENCH_SCALE (1 = about 400 MB).
 * The bundle writer (issue #3) replaces the layout as the destination when it lands.
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { copyGraph, CopySession } from '../shared/copy.ts';
import { formatBytes } from '../shared/cli/progress.ts';
import { formatReference } from '../shared/oci/reference.ts';
import { mergeImages, readImageList } from '../packer/images.ts';
import { RegistryClient } from '../shared/registry/client.ts';
import { HttpTransport } from '../shared/registry/transport.ts';
import { LayoutStore } from '../shared/store/layout.ts';
import { RemoteStore } from '../shared/store/remote.ts';
import { generateImages, pushImages } from '../test/services/fixtures.ts';
import { startRegistry } from '../test/services/registry.ts';

const exec = promisify(execFile);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const JOBS = Number(process.env.BENCH_JOBS ?? 16);
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const root = join(import.meta.dirname, '..');
const work = join(root, '.tmp', 'bench');
const say = (s: string) => process.stdout.write(`${s}\n`);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

const harnessList = join(root, '..', 'shared', 'fixtures', 'harness', 'images.txt');
const refs = mergeImages(await readImageList(harnessList)).map((image) => image.reference);

await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });
const registry = await startRegistry();
try {
  // About 400 MB: 3 shared base layers (8 MB each) and 2 unique layers of ~0.9 MB per image.
  const images = await generateImages({
    seed: 2026,
    baseLayerSize: Math.round(8e6 * SCALE),
    images: refs.map((r) => ({
      repository: r.repository,
      tag: r.tag!,
      layers: 5,
      layerSize: Math.round(0.93e6 * SCALE),
      sharedBaseLayers: 3,
    })),
  });
  await pushImages(registry.url, images, { concurrency: 8 });
  const unique = new Map<string, number>();
  for (const img of images) for (const b of img.blobs) unique.set(b.digest, b.size);
  const bytes = [...unique.values()].reduce((a, b) => a + b, 0);
  say(`Harness shape: ${refs.length} images, ${unique.size} unique blobs, ${formatBytes(bytes)}; ${RUNS} runs each, jobs ${JOBS}\n`);

  const mirrors = { 'docker.io': registry.url, 'registry.k8s.io': registry.url };
  const results: Record<string, number[]> = { airlock: [], skopeo: [], sha256: [], disk: [] };
  let rssPeak = 0;
  for (let run = 0; run < RUNS; run++) {
    const dir = join(work, `airlock-${run}`);
    const transport = new HttpTransport();
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 50);
    results.airlock!.push(
      await timed(async () => {
        const layout = await LayoutStore.open(dir);
        const session = new CopySession({ concurrency: JOBS });
        const clients = new Map<string, RegistryClient>();
        await Promise.all(
          refs.map(async (ref) => {
            let client = clients.get(ref.registry);
            if (!client) clients.set(ref.registry, (client = new RegistryClient(ref.registry, transport, { mirrors })));
            const from = new RemoteStore(client, ref.repository);
            const copied = await copyGraph(from, layout, await from.resolve(ref.tag!), { session });
            await layout.tag(copied, formatReference(ref));
          }),
        );
      }),
    );
    clearInterval(sampler);
    await transport.close();

    const skopeoDir = join(work, `skopeo-${run}`);
    results.skopeo!.push(
      await timed(async () => {
        for (const ref of refs) {
          await exec('skopeo', [
            'copy',
            '-q',
            '--src-tls-verify=false',
            `docker://${registry.host}/${ref.repository}:${ref.tag}`,
            `oci:${skopeoDir}:${formatReference(ref)}`,
          ]);
        }
      }),
    );
    const blobs = join(dir, 'blobs', 'sha256');
    const files = (await readdir(blobs)).map((f) => join(blobs, f));
    results.sha256!.push(await timed(() => exec('openssl', ['dgst', '-sha256', ...files], { maxBuffer: 1 << 24 })));
    results.disk!.push(await timed(() => exec('cp', ['-r', blobs, join(work, `copy-${run}`)])));
    await rm(skopeoDir, { recursive: true, force: true });
    await rm(join(work, `copy-${run}`), { recursive: true, force: true });
    if (run > 0) await rm(dir, { recursive: true, force: true });
  }

  const a = median(results.airlock!);
  const row = (name: string, s: number, note: string) =>
    say(
      `| ${name.padEnd(34)} | ${s.toFixed(2).padStart(7)} s | ${formatBytes(bytes / s).padStart(10)}/s | ${(s / a).toFixed(2).padStart(6)}x | ${note}`,
    );
  say('| workload: Harness shape, registry -> OCI layout | median    | rate         | vs airlock | note');
  say('|---|---|---|---|---|');
  row(`airlock copyGraph (jobs ${JOBS})`, a, `peak RSS ${formatBytes(rssPeak)}`);
  row('skopeo copy, image by image', median(results.skopeo!), `airlock is ${(median(results.skopeo!) / a).toFixed(1)}x faster (rate over unique bytes)`);
  row('openssl dgst -sha256 (hash limit)', median(results.sha256!), 'same bytes');
  row('cp -r blobs (disk limit)', median(results.disk!), 'same bytes');
  say(`\nruns: ${JSON.stringify(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.map((x) => +x.toFixed(2))])))}`);
} finally {
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}
