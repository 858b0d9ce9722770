/**
 * npm run bench: airlock pack and verify against skopeo and the machine's
 * limits, side by side in the same run, on two workloads:
 *
 *   Harness shape   the 201 references of Harness SMP 0.44.1's image list as
 *                   synthetic images (about 400 MB, shared base layers)
 *   larger images   8 images with big layers (BENCH_LARGE_MB, default 1024 MiB in all)
 *   huge images     with BENCH_HUGE=1: the same 8 images at BENCH_HUGE_MB (default
 *                   5120): one pack, verify and load, their peak RSS next to the
 *                   larger images' (scripts/bench-huge.ts): flat, under 200 MB
 *
 * Measured for each workload, each BENCH_RUNS times (medians reported):
 *   airlock pack    the one-file CLI (`node dist/airlock.mjs pack`) from a local
 *                   registry through --registry-mirror into one signed bundle
 *   floor pull      scripts/floor/floor.mjs (no airlock code): GETs every manifest
 *                   and blob of the bundle's images from the same registry, --jobs
 *                   at a time over keep-alive connections, bytes discarded; pack's
 *                   "x the floor" is airlock pack's median over this one's
 *   skopeo loop     `skopeo copy docker://... oci:DIR:REF` image by image into
 *                   one OCI layout (what users, and Harness's own air-gap
 *                   script, do today)
 *   airlock verify  the one-file enclave loader (dist/airlock-loader.mjs) over the bundle
 *   openssl sha256  `openssl dgst -sha256` over the bundle (read + hash limit)
 *   cp              a plain copy of the bundle file, never a reflink (disk limit);
 *                   pack's target on the larger images is 1.2x cp + openssl
 *   cp + sync       the same copy, then `sync FILE` (fsync): the durable disk
 *                   limit, since pack flushes its bundle before naming it; pack
 *                   is printed against both
 *   airlock load    the built CLI from the bundle into an empty registry, then
 *                   the same load again (everything present)
 *   skopeo load     `skopeo copy oci:DIR:REF docker://...` image by image from
 *                   the extracted bundle into another empty registry
 *   floor push      the same program: every blob of the extracted bundle once
 *                   (POST + monolithic PUT), mounted into the other repositories
 *                   that need it, then every manifest (children first), into a
 *                   third empty registry; load's "x the floor" is over this one
 *   inventory       airlock inventory of the loaded registry against
 *                   `skopeo inspect --raw` of each tag one at a time
 *                   (scripts/bench-inventory.ts; target >= 5x faster)
 *   sftp, s3        airlock upload and download of the bundle to a local sshd
 *                   and to a local S3 protocol server (s3rver)
 * plus the peak RSS of each airlock process (GNU time), the medians of pack's
 * phases (its --json "phases") and the bundle's size against the unique blob
 * bytes plus manifests.
 * On the Harness shape, then: the --jobs curve, pack and load at 4/8/16/32
 * (scripts/bench-jobs.ts), and with BENCH_PROFILE=1 one pack and one load under
 * `node --cpu-prof`, top functions and modules by self time (scripts/bench-profile.ts).
 *
 * Environment: BENCH_RUNS (default 3), BENCH_JOBS (default 16),
 * BENCH_SCALE (Harness shape, 1 = about 400 MB), BENCH_LARGE_MB (default 1024),
 * BENCH_ONLY (harness | large | delta), BENCH_JOBS_CURVE (default 4,8,16,32; empty
 * to skip), BENCH_PROFILE (1 to profile), BENCH_HUGE (1: the huge images too),
 * BENCH_HUGE_MB (default 5120). The Harness upgrade (full vs delta bundle)
 * is measured by bench-delta.ts, after the Harness shape.
 */
import { formatStartupRatio, startupRatio } from './startup.ts';
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { formatBytes } from '../shared/cli/progress.ts';
import { formatReference } from '../shared/oci/reference.ts';
import { generateKeyPair } from '../shared/sign/keys.ts';
import { mergeImages, readImageList } from '../packer/images.ts';
import { startRegistry, type RegistryService } from '../test/services/registry.ts';
import { startSshd } from '../test/services/sshd.ts';
import { startS3 } from '../test/services/s3.ts';
import { benchInventory } from './bench-inventory.ts';
import { benchDelta } from './bench-delta.ts';
import { floor } from './bench-floor.ts';
import { benchJobsCurve } from './bench-jobs.ts';
import { profilePackAndLoad } from './bench-profile.ts';
import { benchHuge } from './bench-huge.ts';
import { largerImages, packPhases, publishWorkload, type Workload } from './bench-workload.ts';

const exec = promisify(execFile);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const JOBS = Number(process.env.BENCH_JOBS ?? 16);
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const LARGE_MB = Number(process.env.BENCH_LARGE_MB ?? 1024);
const ONLY = process.env.BENCH_ONLY;
const HUGE = process.env.BENCH_HUGE === '1';
const HUGE_MB = Number(process.env.BENCH_HUGE_MB ?? 5120);
const JOBS_CURVE = (process.env.BENCH_JOBS_CURVE ?? '4,8,16,32').split(',').filter(Boolean).map(Number);
const PROFILE = process.env.BENCH_PROFILE === '1';
const root = join(import.meta.dirname, '..');
const work = join(root, '.tmp', 'bench');
const PASSWORD = 'bench';
const say = (s: string) => process.stdout.write(`${s}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

/** The commands the enclave runs: measured with the one-file loader it runs them with. */
const ENCLAVE_COMMANDS = new Set(['verify', 'load', 'download', 'inventory']);

/** Run the one-file build (dist/, what `npm install -g` and the enclave get) under GNU time; returns seconds and peak RSS in bytes. */
async function airlock(args: string[]): Promise<{ seconds: number; rss: number; stdout: string }> {
  const t = performance.now();
  const program = join(root, 'dist', ENCLAVE_COMMANDS.has(args[0]) ? 'airlock-loader.mjs' : 'airlock.mjs');
  const { stdout, stderr } = await exec(
    '/usr/bin/time',
    ['-f', 'airlock-max-rss-kb %M', process.execPath, program, ...args],
    { cwd: root, env: { ...process.env, AIRLOCK_PASSWORD: PASSWORD }, maxBuffer: 1 << 26 },
  );
  const seconds = (performance.now() - t) / 1000;
  const kb = /airlock-max-rss-kb (\d+)/.exec(stderr);
  return { seconds, rss: kb ? Number(kb[1]) * 1024 : 0, stdout };
}

async function harnessShape(): Promise<Workload> {
  const list = join(root, '..', 'shared', 'fixtures', 'harness', 'images.txt');
  const refs = mergeImages(await readImageList(list)).map((i) => i.reference);
  return {
    name: `Harness shape (${refs.length} images)`,
    refs,
    // 3 shared base layers (8 MB each) and 2 unique layers of ~0.9 MB per image.
    baseLayerSize: Math.round(8e6 * SCALE),
    jobsCurve: true,
    specs: refs.map((r) => ({ repository: r.repository, tag: r.tag!, layers: 5, layerSize: Math.round(0.93e6 * SCALE), sharedBaseLayers: 3 })),
  };
}

/** The peak RSS of each airlock command over a workload's runs. */
type PeakRss = Record<string, number>;

async function measure(w: Workload, registry: RegistryService, dir: string): Promise<PeakRss> {
  const { count, bytes, packArgs } = await publishWorkload(w, registry, dir, join(work, 'airlock.key'));
  say(`\n## ${w.name}: ${count} unique blobs and manifests, ${formatBytes(bytes)}; ${RUNS} runs each, --jobs ${JOBS}\n`);
  const bundle = join(dir, 'bundle.tar');
  const loadArgs = ['--key', join(work, 'airlock.pub'), '--plain-http', '--json'];
  const results: Record<string, number[]> = { pack: [], skopeo: [], verify: [], sha256: [], cp: [], cpSync: [], load: [], reload: [], skopeoLoad: [], floorPull: [], floorPush: [] };
  const peak: PeakRss = {};
  const phases: Record<string, number[]> = {};
  /** Run one airlock command, keeping its peak RSS under `name`. */
  const tracked = async (name: string, args: string[]) => {
    const r = await airlock(args);
    peak[name] = Math.max(peak[name] ?? 0, r.rss);
    return r;
  };
  const rss = (name: string) => `peak RSS ${formatBytes(peak[name] ?? 0)}`;
  let bundleSize = 0;
  let inventoryRows: string[] = [];
  for (let run = 0; run < RUNS; run++) {
    await rm(bundle, { force: true });
    const packed = await tracked('pack', [...packArgs, '-o', bundle, '--jobs', String(JOBS)]);
    results.pack!.push(packed.seconds);
    for (const [phase, s] of Object.entries(packPhases(packed.stdout))) (phases[phase] ??= []).push(s);
    bundleSize = (await stat(bundle)).size;

    results.verify!.push((await tracked('verify', ['verify', bundle, '--key', join(work, 'airlock.pub'), '--json'])).seconds);
    results.sha256!.push(await timed(() => exec('openssl', ['dgst', '-sha256', bundle])));
    results.cp!.push(await timed(() => exec('cp', ['--reflink=never', bundle, join(dir, 'copy.tar')])));
    await rm(join(dir, 'copy.tar'), { force: true });
    // The durable copy: pack flushes its bundle to disk before it names it, so its disk limit is a copy plus fsync.
    results.cpSync!.push(
      await timed(async () => {
        await exec('cp', ['--reflink=never', bundle, join(dir, 'copy.tar')]);
        await exec('sync', [join(dir, 'copy.tar')]);
      }),
    );
    await rm(join(dir, 'copy.tar'), { force: true });

    const layout = join(dir, `skopeo-${run}`);
    results.skopeo!.push(
      await timed(async () => {
        for (const ref of w.refs) {
          await exec('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${registry.host}/${ref.repository}:${ref.tag}`, `oci:${layout}:${formatReference(ref)}`]);
        }
      }),
    );
    await rm(layout, { recursive: true, force: true });

    // The enclave side: load into an empty registry, load again, and skopeo from the extracted layout.
    const enclave = await startRegistry();
    const skopeoEnclave = await startRegistry();
    const floorEnclave = await startRegistry();
    const extracted = join(dir, 'extracted');
    try {
      results.load!.push((await tracked('load', ['load', bundle, '--key', join(work, 'airlock.pub'), '--registry', enclave.host, '--plain-http', '--jobs', String(JOBS), '--json'])).seconds);
      results.reload!.push((await tracked('reload', ['load', bundle, '--key', join(work, 'airlock.pub'), '--registry', enclave.host, '--plain-http', '--json'])).seconds);
      if (run === 0) inventoryRows = (await benchInventory({ registry: enclave, refs: w.refs, dir, jobs: JOBS, airlock })).rows;
      await mkdir(extracted, { recursive: true });
      await exec('tar', ['-xf', bundle, '-C', extracted]);
      results.floorPull!.push((await floor('pull', join(extracted, 'oci'), registry.url, JOBS)).seconds);
      results.floorPush!.push((await floor('push', join(extracted, 'oci'), floorEnclave.url, JOBS)).seconds);
      results.skopeoLoad!.push(
        await timed(async () => {
          for (const ref of w.refs) {
            await exec('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${join(extracted, 'oci')}:${formatReference(ref)}`, `docker://${skopeoEnclave.host}/${ref.repository}:${ref.tag}`]);
          }
        }),
      );
    } finally {
      await enclave.stop();
      await skopeoEnclave.stop();
      await floorEnclave.stop();
      await rm(extracted, { recursive: true, force: true });
    }
  }

  const pack = median(results.pack!);
  const sha = median(results.sha256!);
  const row = (name: string, s: number, note: string) =>
    say(`| ${name.padEnd(36)} | ${s.toFixed(2).padStart(7)} s | ${(formatBytes(bytes / s) + '/s').padStart(11)} | ${note}`);
  say('| what | median | rate | ratios |');
  say('|---|---|---|---|');
  const floorPull = median(results.floorPull!);
  const floorPush = median(results.floorPush!);
  const cp = median(results.cp!);
  const cpSync = median(results.cpSync!);
  row(
    `airlock pack (CLI, jobs ${JOBS})`,
    pack,
    `${(pack / floorPull).toFixed(2)}x the floor; ${(median(results.skopeo!) / pack).toFixed(1)}x faster than the skopeo loop; ${(pack / (cp + sha)).toFixed(2)}x cp + openssl, ${(pack / (cpSync + sha)).toFixed(2)}x cp + fsync + openssl; ${rss('pack')}`,
  );
  row(`floor pull (minimal client, ${JOBS} at once)`, floorPull, 'GET every manifest and blob, bytes discarded');
  row('skopeo copy, image by image', median(results.skopeo!), '');
  row('airlock verify (one-file loader)', median(results.verify!), `${(median(results.verify!) / sha).toFixed(2)}x openssl; ${rss('verify')}`);
  const load = median(results.load!);
  row(`airlock load (CLI, jobs ${JOBS})`, load, `${(load / floorPush).toFixed(2)}x the floor; ${(median(results.skopeoLoad!) / load).toFixed(1)}x faster than the skopeo loop; ${rss('load')}; no temp files`);
  row(`floor push (minimal client, ${JOBS} at once)`, floorPush, 'every blob once + mounts, then manifests');
  row('skopeo copy oci: -> docker://, by image', median(results.skopeoLoad!), 'from the extracted bundle');
  // A reload of an unchanged bundle writes nothing, so it hashes nothing: the signed index, the layout, one GET per tag (target < 5% of the first load).
  const reload = median(results.reload!);
  row('airlock load again (all present)', reload, `${((reload / load) * 100).toFixed(1)}% of the first load (target < 5%); ${rss('reload')}`);
  for (const r of inventoryRows) say(r);
  row('openssl dgst -sha256 bundle', sha, 'read + hash limit');
  row('cp --reflink=never bundle', cp, 'disk limit (page cache, no fsync; pack flushes to disk)');
  row('cp + sync (fsync) of the copy', cpSync, 'durable disk limit (what pack must pay)');

  // Transfer over SFTP to a local sshd (loopback), once each way, next to the same plain copy.
  const sshd = await startSshd();
  try {
    const drop = join(dir, 'drop');
    await mkdir(drop);
    const ssh = ['--ssh-key', sshd.clientKey, '--known-hosts', sshd.knownHosts];
    const up = await tracked('upload sftp', ['upload', bundle, `sftp://${sshd.user}@127.0.0.1:${sshd.port}${drop}/`, ...ssh]);
    const down = await tracked('download sftp', ['download', `sftp://${sshd.user}@127.0.0.1:${sshd.port}${drop}/bundle.tar`, '-o', join(dir, 'downloaded.tar'), ...ssh]);
    row('airlock upload, sftp:// (loopback)', up.seconds, `${(up.seconds / cp).toFixed(1)}x cp; ${rss('upload sftp')}`);
    row('airlock download, sftp:// (loopback)', down.seconds, `${(down.seconds / cp).toFixed(1)}x cp; ${rss('download sftp')}`);
  } finally {
    await sshd.stop();
    await rm(join(dir, 'downloaded.tar'), { force: true });
  }
  // And through an S3 protocol server (s3rver, its own process; a file-backed Node server, so a floor, not a ceiling).
  const s3 = await startS3();
  try {
    const s3Args = ['--s3-endpoint', s3.endpoint];
    Object.assign(process.env, s3.env);
    const up = await tracked('upload s3', ['upload', bundle, `s3://${s3.bucket}/bench/`, ...s3Args]);
    const down = await tracked('download s3', ['download', `s3://${s3.bucket}/bench/bundle.tar`, '-o', join(dir, 'downloaded.tar'), ...s3Args]);
    row('airlock upload, s3:// (s3rver, loopback)', up.seconds, `${(up.seconds / cp).toFixed(1)}x cp; ${rss('upload s3')}`);
    row('airlock download, s3:// (s3rver, loopback)', down.seconds, `${(down.seconds / cp).toFixed(1)}x cp; ${rss('download s3')}`);
  } finally {
    await s3.stop();
    await rm(join(dir, 'downloaded.tar'), { force: true });
  }
  say(`\nbundle ${formatBytes(bundleSize)} = unique blobs and manifests + ${(((bundleSize - bytes) / bytes) * 100).toFixed(3)}% (tar headers, padding, index, signature, layout files)`);
  say(`runs (s): ${JSON.stringify(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.map((x) => +x.toFixed(2))])))}`);
  say(`pack phases (medians, s; --json "phases"): ${Object.entries(phases).map(([phase, s]) => `${phase} ${median(s).toFixed(2)}`).join(', ')}`);
  if (w.jobsCurve && JOBS_CURVE.length > 0) await benchJobsCurve({ levels: JOBS_CURVE, runs: RUNS, dir, packArgs, loadArgs, airlock, say });
  if (w.jobsCurve && PROFILE) await profilePackAndLoad({ root, dir, packArgs, loadArgs, env: { ...process.env, AIRLOCK_PASSWORD: PASSWORD }, say });
  await rm(bundle, { force: true });
  return peak;
}

await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });
await exec('npm', ['run', '-s', 'build'], { cwd: root });
const pair = generateKeyPair(PASSWORD);
await writeFile(join(work, 'airlock.key'), pair.privateKeyPem, { mode: 0o600 });
await writeFile(join(work, 'airlock.pub'), pair.publicKeyPem);
say(`airlock bench on ${(await readFile('/proc/cpuinfo', 'utf8').catch(() => '')).match(/^processor/gm)?.length ?? '?'} CPUs, node ${process.version}`);
say(formatStartupRatio(startupRatio()));
const workloads: (() => Promise<Workload> | Workload)[] = [];
if (ONLY !== 'large' && ONLY !== 'delta') workloads.push(harnessShape);
if (ONLY !== 'harness' && ONLY !== 'delta') workloads.push(() => largerImages(LARGE_MB));
try {
  let largerPeak: PeakRss = {};
  for (const make of workloads) {
    const registry = await startRegistry();
    const dir = join(work, `w${workloads.indexOf(make)}`);
    await mkdir(dir, { recursive: true });
    try {
      largerPeak = await measure(await make(), registry, dir);
    } finally {
      await registry.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }
  if (HUGE && ONLY !== 'harness' && ONLY !== 'delta') {
    await benchHuge({ mb: HUGE_MB, dir: join(work, 'huge'), key: join(work, 'airlock.key'), pub: join(work, 'airlock.pub'), jobs: JOBS, airlock, say, largerMb: LARGE_MB, largerPeak });
  }
  if (ONLY !== 'large') {
    await benchDelta({ workload: await harnessShape(), dir: join(work, 'delta'), key: join(work, 'airlock.key'), pub: join(work, 'airlock.pub'), jobs: JOBS, airlock, say });
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
