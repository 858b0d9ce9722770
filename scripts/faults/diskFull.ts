import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fill, mountTmpfs, resizeTmpfs, unmountTmpfs } from '../../test/helpers/tmpfs.ts';
import { startFaultProxy } from '../../test/services/faultProxy.ts';
import { startRegistry } from '../../test/services/registry.ts';
import { airlock, said, type Run } from './cli.ts';
import type { Expected } from './kills.ts';
import { incompleteTags, wrongDigests } from './registryGraph.ts';
import { seeded } from './rng.ts';
import { tally, violation, type Tally } from './tally.ts';
import { KEY_ENV, type World } from './world.ts';

const MiB = 1024 * 1024;
const NEEDS_ROOT = ' (not run: mount -t tmpfs needs root)';

/** Run `args`, filling `dir` as soon as a `.partial` appears there. */
async function fillingWhenPartial(dir: string, args: string[]): Promise<Run> {
  const poll = setInterval(() => {
    if (readdirSync(dir).some((f) => f.endsWith('.partial'))) {
      clearInterval(poll);
      fill(dir);
    }
  }, 20);
  try {
    return await airlock(args, { env: KEY_ENV });
  } finally {
    clearInterval(poll);
  }
}

/**
 * pack onto a tmpfs: even trials have room for the bundle when pack checks and are filled once the
 * `.partial` appears (layer downloads held 1 s, so the fill comes first); odd ones are too small
 * from the start. Each pack exits 4 saying the disk is full, leaves nothing there, and with room
 * the same command completes with a bundle that verifies.
 */
export async function packerDiskFull(world: World, spec: string, bundleBytes: number, trials: number): Promise<Tally> {
  const t = tally("disk full on the packer's output");
  const started = performance.now();
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: world.source.port });
  try {
    for (let i = 0; i < trials; i++) {
      const dir = join(world.work, `disk-full-pack-${i}`);
      mkdirSync(dir);
      const midWrite = i % 2 === 0;
      if (!mountTmpfs(dir, midWrite ? bundleBytes + 2 * MiB : bundleBytes / 2)) {
        t.scenario += NEEDS_ROOT;
        break;
      }
      try {
        const output = join(dir, 'bundle.tar');
        const args = world.packArgs(spec, output);
        proxy.clearFaults();
        proxy.addFault({ match: /^GET \/v2\/.*\/blobs\/sha256:/, times: 10_000, kind: 'stall', ms: 1000 });
        t.trials++;
        const full = midWrite ? await fillingWhenPartial(dir, [...args.slice(0, -1), `docker.io=${proxy.url}`]) : await airlock(args, { env: KEY_ENV });
        if (full.code !== 4 || !/disk full/.test(full.stderr)) violation(t, `trial ${i}: expected exit 4 saying the disk is full: ${said(full)}`);
        const left = readdirSync(dir).filter((f) => f !== 'filler');
        if (left.length > 0) violation(t, `trial ${i}: the failed pack left ${left.join(', ')}`);
        rmSync(join(dir, 'filler'), { force: true });
        resizeTmpfs(dir, bundleBytes + 8 * MiB);
        const again = await airlock(args, { env: KEY_ENV });
        const verified = again.code === 0 ? await airlock(['verify', output, '--key', world.pub]) : again;
        if (verified.code !== 0) violation(t, `trial ${i}: with room, ${again.code === 0 ? 'the bundle does not verify' : 'the rerun'}: ${said(verified)}`, true);
        else t.completed++;
      } finally {
        unmountTmpfs(dir);
      }
    }
  } finally {
    await proxy.stop();
  }
  t.seconds = (performance.now() - started) / 1000;
  return t;
}

/**
 * load into a registry whose storage (a tmpfs of a seeded 30 to 90 % of the bundle) fills: exit 4
 * naming the registry, no incomplete tag, and once there is room the same command completes
 * with every digest right.
 */
export async function registryDiskFull(world: World, bundle: string, bundleBytes: number, expected: Expected, trials: number, seed: number): Promise<Tally> {
  const t = tally(`disk full on the registry's storage (seed ${seed})`);
  const started = performance.now();
  const random = seeded(seed);
  for (let i = 0; i < trials; i++) {
    const target = await startRegistry();
    try {
      if (!mountTmpfs(target.dataDir, bundleBytes * (0.3 + 0.6 * random()))) {
        t.scenario += NEEDS_ROOT;
        break;
      }
      try {
        const args = ['load', bundle, '--key', world.pub, '--registry', `${target.host}/full`, '--plain-http', '--jobs', '2'];
        t.trials++;
        const full = await airlock(args);
        if (full.code !== 4) violation(t, `trial ${i}: expected exit 4 from a full registry: ${said(full)}`);
        for (const b of await incompleteTags(target.url, 'full')) violation(t, `trial ${i}: after the failed load: ${b}`);
        resizeTmpfs(target.dataDir, bundleBytes * 3);
        const again = await airlock(args);
        if (again.code !== 0) {
          violation(t, `trial ${i}: with room, the rerun ${said(again)}`, true);
          continue;
        }
        const wrong = await wrongDigests(target.url, expected('full'));
        for (const w of wrong) violation(t, `trial ${i}: ${w}`, true);
        if (wrong.length === 0) t.completed++;
      } finally {
        unmountTmpfs(target.dataDir);
      }
    } finally {
      await target.stop();
    }
  }
  t.seconds = (performance.now() - started) / 1000;
  return t;
}
