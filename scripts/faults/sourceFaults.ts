import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startFaultProxy, type Fault } from '../../test/services/faultProxy.ts';
import { airlock, said } from './cli.ts';
import { tally, violation, type Tally } from './tally.ts';
import { KEY_ENV, type World } from './world.ts';

/** The source registry misbehaving under a pack: the faults of one trial, and the pack's extra flags. */
interface SourceFault {
  scenario: string;
  faults: Fault[];
  args?: string[];
}

const LAYER_GETS = /^GET \/v2\/.*\/blobs\/sha256:/;

/**
 * pack through a fault proxy in front of the source registry. The pack exits 0, or 4 (a remote
 * failure) and then completes on a rerun without the fault; the bundle under its final name
 * always verifies.
 */
async function disruptedPacks(world: World, spec: string, fault: SourceFault, trials: number): Promise<Tally> {
  const t = tally(fault.scenario);
  const started = performance.now();
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: world.source.port });
  try {
    for (let i = 0; i < trials; i++) {
      const output = join(world.work, `source-fault-${i}.tar`);
      const args = [...world.packArgs(spec, output).slice(0, -1), `docker.io=${proxy.url}`, ...(fault.args ?? [])];
      proxy.clearFaults();
      for (const f of fault.faults) proxy.addFault({ ...f });
      t.trials++;
      const first = await airlock(args, { env: KEY_ENV });
      if (first.code !== 0 && first.code !== 4) violation(t, `trial ${i}: ${said(first)}`);
      if (first.code !== 0 && existsSync(output)) violation(t, `trial ${i}: the failed pack left ${output} under its final name`);
      proxy.clearFaults();
      const done = first.code === 0 ? first : await airlock(args, { env: KEY_ENV });
      const verified = done.code === 0 ? await airlock(['verify', output, '--key', world.pub]) : done;
      if (verified.code !== 0) violation(t, `trial ${i}: ${done.code === 0 ? 'the bundle does not verify' : 'the rerun'}: ${said(verified)}`, true);
      else t.completed++;
      rmSync(output, { force: true });
    }
  } finally {
    await proxy.stop();
  }
  t.seconds = (performance.now() - started) / 1000;
  return t;
}

/** Every layer download cut every 256 KB (pack resumes with Range requests); a source that stops answering mid-layer. */
export async function sourceFaults(world: World, spec: string, trials: number): Promise<Tally[]> {
  return [
    await disruptedPacks(world, spec, { scenario: 'pack: layer downloads cut every 256 KB', faults: [{ match: LAYER_GETS, times: 10_000, kind: 'drop-after-bytes', bytes: 256 * 1024 }] }, trials),
    await disruptedPacks(world, spec, { scenario: 'pack: source hangs mid-layer (--timeout 2)', faults: [{ match: LAYER_GETS, times: 2, kind: 'hang-after-bytes', bytes: 100_000 }], args: ['--timeout', '2'] }, trials),
  ];
}
