/**
 * The inventory bench: `airlock inventory` of a loaded enclave registry
 * against the baseline of reading each tag's manifest one at a time with
 * `skopeo inspect --raw` (target: inventory at least 5x faster).
 *
 * scripts/bench.ts calls benchInventory() on the registry its load filled.
 * Run alone (`npx tsx scripts/bench-inventory.ts`), it fills a registry with
 * the Harness shape itself (BENCH_SCALE sizes the layers, as in bench.ts)
 * and builds and runs the CLI as bench.ts does (inventory is an enclave command:
 * the one-file dist/airlock-loader.mjs).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readInventory } from '../shared/inventory/format.ts';
import type { ImageReference } from '../shared/oci/reference.ts';
import { mergeImages, readImageList } from '../packer/images.ts';
import { generateImages, pushImages } from '../test/services/fixtures.ts';
import { startRegistry, type RegistryService } from '../test/services/registry.ts';

const exec = promisify(execFile);
const root = join(import.meta.dirname, '..');

export interface InventoryBenchOptions {
  /** The enclave registry, loaded (plain HTTP, no auth). */
  registry: RegistryService;
  /** The references loaded, as they sit in the registry (repository and tag). */
  refs: ImageReference[];
  /** Scratch directory for the inventory file. */
  dir: string;
  jobs: number;
  /** Runs the airlock CLI; resolves to its seconds and stdout. */
  airlock: (args: string[]) => Promise<{ seconds: number; stdout: string }>;
}

export interface InventoryBenchResult {
  airlockSeconds: number;
  skopeoSeconds: number;
  /** skopeo seconds / airlock seconds. */
  speedup: number;
  /** Seconds of `airlock --version`: the start-up inside airlockSeconds. */
  startupSeconds: number;
  tags: number;
  manifests: number;
  blobs: number;
  /** The table rows, markdown. */
  rows: string[];
}

export async function benchInventory(o: InventoryBenchOptions): Promise<InventoryBenchResult> {
  const output = join(o.dir, 'inventory.json');
  // What of it is the CLI's start-up (loading every module), the same for every command.
  const startup = (await o.airlock(['--version'])).seconds;
  const inventoried = await o.airlock(['inventory', '--registry', o.registry.host, '--plain-http', '-o', output, '--jobs', String(o.jobs), '--json']);
  const inventory = await readInventory(output);
  const tags = Object.values(inventory.tags).reduce((n, t) => n + Object.keys(t).length, 0);
  if (tags < o.refs.length) throw new Error(`inventory lists ${tags} tags, ${o.refs.length} were loaded`);

  const baseline = performance.now();
  for (const ref of o.refs) {
    await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${o.registry.host}/${ref.repository}:${ref.tag}`], { maxBuffer: 1 << 24 });
  }
  const skopeoSeconds = (performance.now() - baseline) / 1000;
  const speedup = skopeoSeconds / inventoried.seconds;
  const manifests = Object.keys(inventory.manifests).length;
  const blobs = Object.keys(inventory.blobs).length;
  // The columns of bench.ts's table: what, time, rate (none here), notes.
  const row = (name: string, s: number, note: string) => `| ${name.padEnd(36)} | ${s.toFixed(2).padStart(7)} s | ${''.padStart(11)} | ${note}`;
  return {
    airlockSeconds: inventoried.seconds,
    skopeoSeconds,
    speedup,
    startupSeconds: startup,
    tags,
    manifests,
    blobs,
    rows: [
      row(
        `airlock inventory (CLI, jobs ${o.jobs})`,
        inventoried.seconds,
        `${speedup.toFixed(1)}x faster than skopeo inspect --raw by tag (target >= 5x); ${(skopeoSeconds / Math.max(0.001, inventoried.seconds - startup)).toFixed(1)}x without the CLI's start-up (airlock --version: ${startup.toFixed(2)} s); ${inventory.repositories.length} repositories, ${tags} tags, ${manifests} manifests, ${blobs} blobs`,
      ),
      row('skopeo inspect --raw, tag by tag', skopeoSeconds, `${o.refs.length} tags`),
    ],
  };
}

/** Alone: the Harness shape pushed straight into a registry, then the comparison. */
async function main(): Promise<void> {
  const scale = Number(process.env.BENCH_SCALE ?? 1);
  const jobs = Number(process.env.BENCH_JOBS ?? 16);
  const refs = mergeImages(await readImageList(join(root, '..', 'shared', 'fixtures', 'harness', 'images.txt'))).map((i) => i.reference);
  const images = await generateImages({
    seed: 2026,
    baseLayerSize: Math.round(8e6 * scale),
    images: refs.map((r) => ({ repository: r.repository, tag: r.tag!, layers: 5, layerSize: Math.round(0.93e6 * scale), sharedBaseLayers: 3 })),
  });
  const registry = await startRegistry();
  const dir = await mkdtemp(join(tmpdir(), 'airlock-bench-inventory-'));
  try {
    await pushImages(registry.url, images, { concurrency: 8 });
    // The built CLI, as bench.ts and users run it (tsx would add seconds of start-up to every run).
    await exec('npm', ['run', '-s', 'build'], { cwd: root });
    const airlock = async (args: string[]) => {
      const t = performance.now();
      const { stdout } = await exec(process.execPath, [join(root, 'dist', 'airlock-loader.mjs'), ...args], { cwd: root, maxBuffer: 1 << 26 });
      return { seconds: (performance.now() - t) / 1000, stdout };
    };
    const result = await benchInventory({ registry, refs, dir, jobs, airlock });
    const cpus = (await readFile('/proc/cpuinfo', 'utf8').catch(() => '')).match(/^processor/gm)?.length ?? '?';
    process.stdout.write(`inventory bench: ${refs.length} images (BENCH_SCALE ${scale}) on ${cpus} CPUs\n| what | time | rate | notes |\n|---|---|---|---|\n${result.rows.join('\n')}\n`);
  } finally {
    await registry.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
