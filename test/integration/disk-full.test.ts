import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { airlock } from '../helpers/cli.ts';
import { startFaultProxy } from '../services/faultProxy.ts';
import { generateImages, pushImages, type SyntheticImage } from '../services/fixtures.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { startS3, type S3Service } from '../services/s3.ts';

/**
 * Full disks, on a real tmpfs of a few MB: pack, download and split refuse
 * early with the numbers when the bundle cannot fit, say the disk is full
 * (exit 4) when it fills during the write, and leave nothing behind.
 */
const PASSWORD = 'disk test';
const env = { AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined };

/** Mount a tmpfs of `mib` MiB on a new folder; undefined when mounting is not permitted here. */
function mountTmpfs(parent: string, name: string, mib: number): string | undefined {
  const dir = join(parent, name);
  mkdirSync(dir);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', dir], { stdio: 'pipe' });
    return dir;
  } catch {
    return undefined;
  }
}

/** Write zeros until the file system is full (ENOSPC). */
function fill(dir: string): void {
  const fd = openSync(join(dir, 'filler'), 'w');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

describe('full disks', () => {
  let source: RegistryService;
  let work: string;
  let images: SyntheticImage[];
  let bundle: string;
  const mounts: string[] = [];

  const tmpfs = (name: string, mib: number): string | undefined => {
    const dir = mountTmpfs(work, name, mib);
    if (dir) mounts.push(dir);
    return dir;
  };
  const skipReason = 'mount -t tmpfs is not permitted here (needs root or CAP_SYS_ADMIN)';

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-disk-full-it-'));
    source = await startRegistry();
    images = await generateImages({
      seed: 21,
      images: [
        { repository: 'harness/ng-manager', tag: '1.0', layers: 2, layerSize: 1_200_000 },
        { repository: 'harness/gateway', tag: '2.0', layers: 1, layerSize: 800_000 },
      ],
    });
    await pushImages(source.url, images);
    const pair = generateKeyPair(PASSWORD);
    writeFileSync(join(work, 'airlock.key'), pair.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(work, 'airlock.pub'), pair.publicKeyPem);
    writeFileSync(join(work, 'airlock.yaml'), ['name: disk', 'version: 1.0.0', 'images:', '  - harness/ng-manager:1.0', '  - harness/gateway:2.0', ''].join('\n'));
    bundle = join(work, 'disk.tar');
    const packed = await pack(source.url, bundle);
    assert.equal(packed.code, 0, packed.stderr);
  });

  after(async () => {
    for (const dir of mounts) execFileSync('umount', [dir]);
    await source?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const pack = (registryUrl: string, output: string) =>
    airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', output, '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${registryUrl}`], { env });

  function assertDiskFull(res: { code: number; stderr: string }, dir: string) {
    assert.equal(res.code, 4, res.stderr);
    assert.match(res.stderr, new RegExp(`disk full in ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(res.stderr, /\d+ bytes\) needed/);
  }

  test('pack onto a tmpfs smaller than the bundle: refused before downloading, with the numbers, nothing left', async (t) => {
    const dir = tmpfs('small-pack', 2);
    if (!dir) return t.skip(skipReason);
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: source.port });
    try {
      const res = await pack(proxy.url, join(dir, 'disk.tar'));
      assertDiskFull(res, dir);
      assert.match(res.stderr, /bytes\) free/);
      const layers = new Set(images.flatMap((i) => i.blobs.filter((b) => b.mediaType.includes('layer')).map((b) => b.digest)));
      const layerGets = proxy.stats().requests.filter((r) => r.startsWith('GET') && [...layers].some((d) => r.includes(d)));
      assert.deepEqual(layerGets, [], 'no layer was downloaded');
      assert.deepEqual(readdirSync(dir), []);
    } finally {
      await proxy.stop();
    }
  });

  test('pack whose disk fills during the write: the disk-full message, exit 4, no partial bundle left', async (t) => {
    const dir = tmpfs('fills-pack', 6);
    if (!dir) return t.skip(skipReason);
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: source.port });
    try {
      // Layers wait 3 s: time for another writer to fill the disk after the free-space check passed.
      proxy.addFault({ match: /^GET \/v2\/.*\/blobs\/sha256:/, times: 1000, kind: 'stall', ms: 3000 });
      const res = await airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', join(dir, 'disk.tar'), '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${proxy.url}`], {
        env,
        onSpawn: (child) => {
          const poll = setInterval(() => {
            if (readdirSync(dir).some((f) => f.endsWith('.partial'))) {
              clearInterval(poll);
              fill(dir);
            }
          }, 20);
          child.on('close', () => clearInterval(poll));
        },
      });
      assertDiskFull(res, dir);
      assert.deepEqual(readdirSync(dir), ['filler']);
    } finally {
      await proxy.stop();
    }
  });

  test('split onto a tmpfs that cannot hold the volumes: refused with the numbers, no volume left', async (t) => {
    const dir = tmpfs('small-split', 2);
    if (!dir) return t.skip(skipReason);
    const res = await airlock(['split', bundle, '--volume-size', '1M', '--out-dir', dir]);
    assertDiskFull(res, dir);
    assert.deepEqual(readdirSync(dir), []);
  });

  test('download onto a full tmpfs: refused with the numbers, no .partial left', async (t) => {
    const dir = tmpfs('small-download', 2);
    if (!dir) return t.skip(skipReason);
    let s3: S3Service | undefined;
    try {
      s3 = await startS3();
      const s3env = { ...s3.env, AWS_ENDPOINT_URL: undefined, AWS_ENDPOINT_URL_S3: undefined, AWS_PROFILE: undefined };
      const up = await airlock(['upload', bundle, `s3://${s3.bucket}/drop/`, '--s3-endpoint', s3.endpoint], { env: s3env });
      assert.equal(up.code, 0, up.stderr);
      const res = await airlock(['download', `s3://${s3.bucket}/drop/disk.tar`, '-o', join(dir, 'disk.tar'), '--s3-endpoint', s3.endpoint], { env: s3env });
      assertDiskFull(res, dir);
      assert.deepEqual(readdirSync(dir), []);
      assert.ok(statfsSync(dir).bavail > 0);
    } finally {
      await s3?.stop();
    }
  });

  test('a registry whose storage fills during a load: exit 4 naming the registry and its answer', async (t) => {
    const target = await startRegistry();
    let mounted = false;
    try {
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', target.dataDir], { stdio: 'pipe' });
        mounted = true;
      } catch {
        return t.skip(skipReason);
      }
      const full = await airlock(['load', bundle, '--key', join(work, 'airlock.pub'), '--registry', target.host, '--plain-http']);
      assert.equal(full.code, 4, full.stderr);
      // docker-registry answers "HTTP 500 UNKNOWN: unknown error" and keeps the cause (no space left) in its log.
      assert.match(full.stderr, new RegExp(`registry ${target.host.replace(/\./g, '\\.')} answered HTTP 500`));
    } finally {
      // Lazily: the registry still holds files there until it stops.
      if (mounted) execFileSync('umount', ['-l', target.dataDir]);
      await target.stop();
    }
  });
});
