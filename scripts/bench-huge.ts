/**
 * BENCH_HUGE=1 npm run bench: the larger images' shape (8 images, a shared
 * base and 3 unique layers each) at BENCH_HUGE_MB (default 5120 MiB), after
 * the larger images. One pack, verify and load, each with its peak RSS next to
 * the same command's on the larger images: airlock streams, so the peak stays
 * flat as the bytes grow 5x, and under 200 MB (#17).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { formatBytes } from '../shared/cli/progress.ts';
import { startRegistry } from '../test/services/registry.ts';
import { largerImages, packPhases, publishWorkload } from './bench-workload.ts';

export interface HugeBenchOptions {
  mb: number;
  dir: string;
  key: string;
  pub: string;
  jobs: number;
  /** Runs the airlock CLI: seconds, peak RSS (bytes), stdout. */
  airlock: (args: string[]) => Promise<{ seconds: number; rss: number; stdout: string }>;
  say: (line: string) => void;
  /** The larger images' size and peak RSS per command, to compare with. */
  largerMb: number;
  largerPeak: Record<string, number>;
}

const RSS_TARGET = 200 * 1024 * 1024;

export async function benchHuge(o: HugeBenchOptions): Promise<void> {
  await mkdir(o.dir, { recursive: true });
  const source = await startRegistry();
  const enclave = await startRegistry();
  try {
    const { count, bytes, packArgs } = await publishWorkload(largerImages(o.mb), source, o.dir, o.key);
    o.say(`\n## huge images (8 images): ${count} unique blobs and manifests, ${formatBytes(bytes)}; once each, --jobs ${o.jobs}\n`);
    const bundle = join(o.dir, 'bundle.tar');
    const pack = await o.airlock([...packArgs, '-o', bundle, '--jobs', String(o.jobs)]);
    const verify = await o.airlock(['verify', bundle, '--key', o.pub, '--json']);
    const load = await o.airlock(['load', bundle, '--key', o.pub, '--registry', enclave.host, '--plain-http', '--jobs', String(o.jobs), '--json']);
    o.say(`| what | time | rate | peak RSS | at ${o.largerMb} MiB | ratio |`);
    o.say('|---|---|---|---|---|---|');
    for (const [name, r] of [['pack', pack], ['verify', verify], ['load', load]] as const) {
      const before = o.largerPeak[name];
      const ratio = before ? `${(r.rss / before).toFixed(2)}x` : '';
      const verdict = r.rss < RSS_TARGET ? 'under 200 MB' : 'OVER 200 MB';
      o.say(`| airlock ${name} | ${r.seconds.toFixed(1)} s | ${formatBytes(bytes / r.seconds)}/s | ${formatBytes(r.rss)} (${verdict}) | ${before ? formatBytes(before) : '-'} | ${ratio} |`);
    }
    o.say(`\npack phases (s): ${Object.entries(packPhases(pack.stdout)).map(([phase, s]) => `${phase} ${s.toFixed(2)}`).join(', ')}`);
  } finally {
    await source.stop();
    await enclave.stop();
    await rm(o.dir, { recursive: true, force: true });
  }
}
