/**
 * npm run faults: the reliability campaign. Real servers on loopback, the built one-file CLI,
 * a fixed seed and bounded counts (FAULTS_SCALE multiplies them; FAULTS_ONLY=hostile,kills,registry,
 * source,disk picks scenarios). Prints one table: scenario, trials, completed on rerun, invariant violations,
 * data lost; then each finding. Exit 1 when any invariant was violated.
 */
import { existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { airlock, CLI, LOADER } from './faults/cli.ts';
import { crafted, flips, truncations } from './faults/hostile.ts';
import { table, type Tally } from './faults/tally.ts';
import { packReference, startWorld } from './faults/world.ts';
import { startGitServer } from '../test/services/gitServer.ts';
import { startRegistry } from '../test/services/registry.ts';
import { startS3 } from '../test/services/s3.ts';
import { startSshd } from '../test/services/sshd.ts';
import { fileSha256 } from './faults/files.ts';
import { gitLoadKills, killCampaign, loadKills, packKills, promoteKills, referenceLoad, transferKills } from './faults/kills.ts';
import { proxyFaults, registryRestarts } from './faults/registryFaults.ts';
import { approveKills } from './faults/approveKills.ts';
import { packerDiskFull, registryDiskFull } from './faults/diskFull.ts';
import { sourceFaults } from './faults/sourceFaults.ts';
import { hostileSources, lyingRegistries } from './faults/sources.ts';

const SEED = Number(process.env.FAULTS_SEED ?? 16);
const SCALE = Number(process.env.FAULTS_SCALE ?? 1);
const ONLY = new Set((process.env.FAULTS_ONLY ?? 'hostile,kills,registry,source,disk').split(','));
const JOBS = 2;
const scaled = (n: number) => Math.max(1, Math.round(n * SCALE));

async function main(): Promise<void> {
  for (const file of [CLI, LOADER]) if (!existsSync(file)) throw new Error(`${file} is missing: run npm run build first`);
  const started = performance.now();
  const rows: Tally[] = [];
  const report = (t: Tally) => {
    rows.push(t);
    console.error(`faults: ${t.scenario}: ${t.trials} trials, ${t.completed} completed, ${t.violations} violations (${t.seconds.toFixed(0)} s)`);
  };
  const world = await startWorld();
  try {
    // A small bundle: three images of about a KB a layer (OCI, Docker schema 2, a two-platform index), so every truncation can be tried.
    const smallSpec = await world.spec('small', [
      { repository: 'harness/ng-manager', tag: '1.0', layers: 2, layerSize: 1_000, sharedBaseLayers: 1 },
      { repository: 'harness/gateway', tag: '2.0', layers: 2, layerSize: 1_000, sharedBaseLayers: 1, format: 'docker' },
      { repository: 'harness/ui', tag: '3.0', layers: 2, layerSize: 1_000, sharedBaseLayers: 1, platforms: ['linux/amd64', 'linux/arm64/v8'] },
    ]);
    const small = join(world.work, 'small.tar');
    const smallBytes = await packReference(world, smallSpec, small);
    // A medium bundle (a few MB), so a kill can land in the middle of each phase.
    const spec = await world.spec('medium', [
      { repository: 'harness/platform', tag: '1.0', layers: 3, layerSize: 1_000_000, sharedBaseLayers: 1 },
      { repository: 'harness/pipeline', tag: '1.0', layers: 3, layerSize: 1_000_000, sharedBaseLayers: 1, format: 'docker' },
      { repository: 'harness/delegate', tag: '1.0', layers: 2, layerSize: 1_000_000, platforms: ['linux/amd64', 'linux/arm64/v8'] },
    ]);
    const bundle = join(world.work, 'medium.tar');
    const bundleBytes = (await packReference(world, spec, bundle)).length;
    const sha = await fileSha256(bundle);
    const [target, git, s3, sshd] = await Promise.all([startRegistry(), startGitServer(), startS3(), startSshd()]);
    try {
      if (ONLY.has('hostile')) {
        console.error(`faults: hostile input from a ${smallBytes.length}-byte bundle`);
        report(await crafted(world, target, smallBytes, JOBS));
        report(await truncations(world, target, smallBytes, JOBS));
        report(await flips(world, target, smallBytes, scaled(200), SEED, JOBS));
        report(await hostileSources(world, JOBS));
        report(await lyingRegistries(world, JOBS));
      }
      const expected = await referenceLoad(world, target, bundle);
      if (ONLY.has('kills')) {
        report(await killCampaign(loadKills(world, target, bundle, expected, scaled(20)), SEED));
        report(await killCampaign(await gitLoadKills(world, target, git, bundle, expected, scaled(20)), SEED + 1));
        report(await killCampaign(packKills(world, spec, scaled(20)), SEED + 2));
        report(await killCampaign(await promoteKills(world, target, git, small, scaled(20)), SEED + 3));
        for (const [n, c] of transferKills(world, bundle, sha, s3, sshd, scaled(20)).entries()) report(await killCampaign(c, SEED + 4 + n));
      }
      if (ONLY.has('kills') || ONLY.has('approve')) report(await killCampaign(await approveKills(world, target, git, small, 3, scaled(20)), SEED + 9));
      if (ONLY.has('registry')) {
        const measured = await airlock(['load', bundle, '--key', world.pub, '--registry', `${target.host}/measure`, '--plain-http', '--jobs', '2']);
        report(await registryRestarts(world, target, bundle, expected, measured.ms, scaled(10), SEED + 8));
        for (const t of await proxyFaults(world, target, bundle, expected, scaled(3))) report(t);
      }
      if (ONLY.has('source')) for (const t of await sourceFaults(world, spec, scaled(3))) report(t);
      if (ONLY.has('disk')) {
        report(await packerDiskFull(world, spec, bundleBytes, scaled(4)));
        report(await registryDiskFull(world, bundle, bundleBytes, expected, scaled(4), SEED + 10));
      }
    } finally {
      await Promise.all([target.stop(), git.stop(), s3.stop(), sshd.stop()]);
    }
  } finally {
    await world.source.stop();
    rmSync(world.work, { recursive: true, force: true });
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(table(rows));
  console.log(`\n${os.cpus().length} cores (${os.cpus()[0]?.model.trim()}), node ${process.version}, seed ${SEED}, scale ${SCALE}, ${new Date().toISOString().slice(0, 10)}: ${(seconds / 60).toFixed(1)} minutes`);
  const findings = rows.flatMap((r) => r.findings.map((f) => `${r.scenario}: ${f}`));
  if (findings.length) {
    console.log(`\nfindings (${findings.length}):`);
    for (const f of findings.slice(0, 50)) console.log(`- ${f}`);
    process.exitCode = 1;
  }
}

await main();
