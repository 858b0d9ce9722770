import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { hostileCases, walk } from '../../test/helpers/hostile.ts';
import type { RegistryService } from '../../test/services/registry.ts';
import { airlock, said } from './cli.ts';
import { seeded } from './rng.ts';
import { tally, violation, type Tally } from './tally.ts';
import { tagsUnder } from './registryGraph.ts';
import type { World } from './world.ts';

/** A hostile bundle must be refused with exit 3: never accepted, never a crash (1), never a hang. */
const TRIAL_TIMEOUT_MS = 60_000;

interface Variant {
  name: string;
  bytes: Buffer;
}

/**
 * Each variant goes through `verify` and through `load` into its own repository path of the
 * target registry; afterwards no tag may exist under any of those paths.
 */
async function refuseAll(world: World, target: RegistryService, t: Tally, variants: Variant[], jobs: number): Promise<void> {
  const started = performance.now();
  const limit = pLimit(jobs);
  const prefix = t.scenario.replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
  await Promise.all(
    variants.map((v, i) =>
      limit(async () => {
        const file = join(world.work, `${prefix}-${i}.tar`);
        writeFileSync(file, v.bytes);
        try {
          const verify = await airlock(['verify', file, '--key', world.pub], { timeoutMs: TRIAL_TIMEOUT_MS });
          const load = await airlock(['load', file, '--key', world.pub, '--registry', `${target.host}/${prefix}/t${i}`, '--plain-http'], { timeoutMs: TRIAL_TIMEOUT_MS });
          t.trials++;
          let clean = true;
          for (const [command, run] of [['verify', verify], ['load', load]] as const) {
            if (run.code !== 3 || run.hung) {
              clean = false;
              violation(t, `${v.name}: ${command} ${said(run)}`, run.code === 0);
            }
          }
          if (clean) t.completed++;
        } finally {
          rmSync(file, { force: true });
        }
      }),
    ),
  );
  for (const tag of await tagsUnder(target.url, prefix)) violation(t, `a hostile bundle left the tag ${tag}`);
  t.seconds = (performance.now() - started) / 1000;
}

/** Every 512-byte truncation of the bundle (the empty file included). */
export async function truncations(world: World, target: RegistryService, bundle: Buffer, jobs: number): Promise<Tally> {
  const t = tally('bundle truncated at every 512-byte boundary');
  const variants: Variant[] = [];
  for (let at = 0; at < bundle.length; at += 512) variants.push({ name: `truncated to ${at} bytes`, bytes: bundle.subarray(0, at) });
  await refuseAll(world, target, t, variants, jobs);
  return t;
}

/** `count` single-byte flips (a random bit pattern at a random offset), seeded. */
export async function flips(world: World, target: RegistryService, bundle: Buffer, count: number, seed: number, jobs: number): Promise<Tally> {
  const t = tally(`random byte flips (seed ${seed})`);
  const random = seeded(seed);
  const variants: Variant[] = [];
  for (let i = 0; i < count; i++) {
    const at = Math.floor(random() * bundle.length);
    const mask = 1 + Math.floor(random() * 255);
    const bytes = Buffer.from(bundle);
    bytes[at] = bytes[at]! ^ mask;
    variants.push({ name: `trial ${i}: byte ${at} xor 0x${mask.toString(16)}`, bytes });
  }
  await refuseAll(world, target, t, variants, jobs);
  return t;
}

/** The crafted cases of the bundle-integrity review (hidden entries, PAX framing, lenient numbers, ...). */
export async function crafted(world: World, target: RegistryService, bundle: Buffer, jobs: number): Promise<Tally> {
  const t = tally('crafted hostile bundles');
  const entries = walk(bundle).entries;
  const blob = (prefix: string) => entries.find((e) => e.path.startsWith('oci/blobs/') && e.size > 0 && bundle.subarray(e.dataAt, e.dataAt + 1).toString() === prefix)?.path;
  const victim = entries.find((e) => e.path.startsWith('manifests/') && e.size > 0)!.path;
  const variants = hostileCases(bundle, { victim, config: blob('{'), layer: blob('\x1f') });
  await refuseAll(world, target, t, variants, jobs);
  return t;
}
