import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import type { BundleIndex } from '../../shared/bundle/format.ts';
import { airlock } from '../helpers/cli.ts';
import { startFaultProxy } from '../services/faultProxy.ts';
import { generateImages, pushImages, type SyntheticImage } from '../services/fixtures.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { runBytes } from '../services/exec.ts';
import { skopeoFlags } from '../services/skopeo.ts';

/**
 * --timeout against real servers that stop answering: a registry that hangs
 * mid-response or stops reading an upload is dropped after --timeout and the
 * request retried, so pack and load complete; a server that accepts TCP and
 * never answers fails the command (exit 4) within about --timeout.
 */
const PASSWORD = 'stall test';
const env = { AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined };

describe('stalled connections (--timeout)', () => {
  let source: RegistryService;
  let work: string;
  let images: SyntheticImage[];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-stalls-it-'));
    source = await startRegistry();
    images = await generateImages({
      seed: 16,
      images: [
        { repository: 'harness/ng-manager', tag: '1.0', layers: 2, layerSize: 600_000 },
        { repository: 'harness/gateway', tag: '2.0', layers: 1, layerSize: 400_000 },
      ],
    });
    await pushImages(source.url, images);
    const pair = generateKeyPair(PASSWORD);
    writeFileSync(join(work, 'airlock.key'), pair.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(work, 'airlock.pub'), pair.publicKeyPem);
    writeFileSync(join(work, 'airlock.yaml'), ['name: stalls', 'version: 1.0.0', 'images:', '  - harness/ng-manager:1.0', '  - harness/gateway:2.0', ''].join('\n'));
  });

  after(async () => {
    await source?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const pack = (registryUrl: string, bundle: string, extra: string[] = []) =>
    airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', bundle, '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${registryUrl}`, ...extra], { env });

  /** The hex digest of the largest layer: the fault must hit a body longer than the bytes it lets through. */
  function bigLayer(): string {
    const blobs = images.flatMap((i) => i.blobs).sort((a, b) => b.size - a.size);
    return blobs[0]!.digest.slice("sha256:".length);
  }

  function indexOf(bundle: string): BundleIndex {
    const out = mkdtempSync(join(work, 'x-'));
    execFileSync('tar', ['-xf', bundle, '-C', out, 'airlock.json']);
    return JSON.parse(readFileSync(join(out, 'airlock.json'), 'utf8')) as BundleIndex;
  }

  test('a blob GET that hangs mid-body is dropped after --timeout, retried, and the pack completes with the right digests', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: source.port });
    try {
      proxy.addFault({ match: new RegExp(`^GET /v2/.*/blobs/sha256:${bigLayer()}`), times: 1, kind: 'hang-after-bytes', bytes: 100_000 });
      const bundle = join(work, 'stalled-get.tar');
      const started = Date.now();
      const res = await pack(proxy.url, bundle, ['--timeout', '2']);
      const took = Date.now() - started;
      assert.equal(res.code, 0, res.stderr);
      assert.equal(proxy.stats().faultsInjected, 1);
      assert.ok(took < 30_000, `took ${took} ms`);
      const index = indexOf(bundle);
      for (const image of images) {
        const entry = index.images.find((i) => i.ref === `docker.io/${image.repository}:${image.tag}`);
        assert.equal(entry?.digest, image.digest, image.repository);
      }
      const verified = await airlock(['verify', bundle, '--key', join(work, 'airlock.pub')]);
      assert.equal(verified.code, 0, verified.stderr);
    } finally {
      await proxy.stop();
    }
  });

  test('an upload the registry stops reading is dropped after --timeout, retried, and the load completes', async () => {
    const bundle = join(work, 'load.tar');
    const packed = await pack(source.url, bundle);
    assert.equal(packed.code, 0, packed.stderr);
    const target = await startRegistry();
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: target.port });
    try {
      proxy.addFault({ match: new RegExp(`^(PUT|PATCH) /v2/.*/blobs/uploads/.*${bigLayer()}`), times: 1, kind: 'hang-request-after-bytes', bytes: 50_000 });
      const started = Date.now();
      const res = await airlock(['load', bundle, '--key', join(work, 'airlock.pub'), '--registry', `127.0.0.1:${proxy.port}`, '--plain-http', '--timeout', '2']);
      const took = Date.now() - started;
      assert.equal(res.code, 0, res.stderr);
      assert.equal(proxy.stats().faultsInjected, 1);
      assert.ok(took < 40_000, `took ${took} ms`);
      for (const image of images) {
        const raw = await runBytes('skopeo', ['inspect', '--raw', ...skopeoFlags(target), `docker://${target.host}/${image.repository}:${image.tag}`]);
        assert.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, image.digest, image.repository);
      }
    } finally {
      await proxy.stop();
      await target.stop();
    }
  });

  test('a server that accepts TCP and never answers: exit 4 within about --timeout, naming it', async () => {
    const silent = net.createServer(() => undefined);
    const held = new Set<net.Socket>();
    silent.on('connection', (s) => held.add(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const started = Date.now();
      const res = await pack(`http://127.0.0.1:${port}`, join(work, 'silent.tar'), ['--timeout', '2']);
      const took = Date.now() - started;
      assert.equal(res.code, 4, res.stderr);
      assert.match(res.stderr, /no progress for 2 s \(--timeout\)/);
      assert.match(res.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.ok(took < 30_000, `took ${took} ms`);
    } finally {
      for (const s of held) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
