import { setTimeout as sleep } from 'node:timers/promises';
import { startFaultProxy, type FaultProxy } from '../../test/services/faultProxy.ts';
import type { RegistryService } from '../../test/services/registry.ts';
import { airlock, said } from './cli.ts';
import type { Expected } from './kills.ts';
import { incompleteTags, wrongDigests } from './registryGraph.ts';
import { seeded } from './rng.ts';
import { tally, violation, type Tally } from './tally.ts';
import type { World } from './world.ts';

/**
 * A load while the registry misbehaves: it may fail (exit 4), never with an incomplete tag
 * visible, and it completes, on a rerun if need be, with every digest right.
 */
async function disruptedLoads(
  scenario: string,
  trials: number,
  target: RegistryService,
  via: string,
  expected: Expected,
  args: (registry: string) => string[],
  disrupt: (trial: number) => Promise<void>,
  /** The fault is over before the rerun (a storm passes). */
  calm: () => void = () => {},
): Promise<Tally> {
  const t = tally(scenario);
  const started = performance.now();
  const prefix = scenario.replace(/[^a-z0-9]+/gi, '-').toLowerCase().replace(/^-|-$/g, '');
  for (let i = 0; i < trials; i++) {
    const p = `${prefix}-${i}`;
    t.trials++;
    const [first] = await Promise.all([airlock(args(`${via}/${p}`)), disrupt(i)]);
    if (first.code !== 0 && first.code !== 4) violation(t, `trial ${i}: ${said(first)}`);
    for (const b of await incompleteTags(target.url, p)) violation(t, `trial ${i}: after the disrupted load: ${b}`);
    calm();
    const done = first.code === 0 ? first : await airlock(args(`${via}/${p}`));
    if (done.code !== 0) {
      violation(t, `trial ${i}: the rerun ${said(done)}`, true);
      continue;
    }
    const wrong = await wrongDigests(target.url, expected(p));
    for (const w of wrong) violation(t, `trial ${i}: ${w}`, true);
    if (wrong.length === 0) t.completed++;
  }
  t.seconds = (performance.now() - started) / 1000;
  return t;
}

const loadArgs = (world: World, bundle: string) => (registry: string) => ['load', bundle, '--key', world.pub, '--registry', registry, '--plain-http', '--jobs', '2'];

/** The registry process stopped and started again on the same port and storage, at a seeded moment of the load. */
export async function registryRestarts(world: World, target: RegistryService, bundle: string, expected: Expected, loadMs: number, trials: number, seed: number): Promise<Tally> {
  const random = seeded(seed);
  return disruptedLoads(`registry restarted mid-load (seed ${seed})`, trials, target, target.host, expected, loadArgs(world, bundle), async () => {
    await sleep(300 + random() * loadMs);
    await target.restart();
  });
}

/**
 * Through a fault proxy: storms of 503s and of 429s (with Retry-After), connections dropped part
 * way through blob bodies, and a registry that stops reading an upload and never answers (the
 * load's --timeout notices it).
 */
export async function proxyFaults(world: World, target: RegistryService, bundle: string, expected: Expected, trials: number): Promise<Tally[]> {
  const proxy: FaultProxy = await startFaultProxy({ host: '127.0.0.1', port: target.port });
  try {
    const run = (scenario: string, inject: () => void, extra: string[] = []) =>
      disruptedLoads(scenario, trials, target, `127.0.0.1:${proxy.port}`, expected, (registry) => [...loadArgs(world, bundle)(registry), ...extra], async () => {
        proxy.clearFaults();
        inject();
      }, () => proxy.clearFaults());
    return [
      await run('503 storm (30 requests in a row)', () => proxy.addFault({ match: /./, times: 30, kind: 'status', status: 503 })),
      await run('429 storm, Retry-After 1 (30 requests in a row)', () => proxy.addFault({ match: /./, times: 30, kind: 'status', status: 429, retryAfterSeconds: 1 })),
      await run('connections dropped after 64 KB (20 blob transfers)', () => proxy.addFault({ match: /\/blobs\//, times: 20, kind: 'drop-after-bytes', bytes: 64 * 1024 })),
      await run('registry stops reading mid-upload (load --timeout 2)', () => proxy.addFault({ match: /^(PATCH|PUT) \/v2\/.*\/blobs\/uploads\//, times: 2, kind: 'hang-request-after-bytes', bytes: 100_000 }), ['--timeout', '2']),
    ];
  } finally {
    await proxy.stop();
  }
}
