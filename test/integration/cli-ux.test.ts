import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { airlock } from '../helpers/cli.ts';
import { startFaultProxy } from '../services/faultProxy.ts';
import { generateImages, pushImages, type SyntheticImage } from '../services/fixtures.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { jsonLines, resultOf } from '../json-lines.ts';

/**
 * What a user sees when the network fails or they press Ctrl-C, through the
 * real CLI against real registries: one clear error per unreachable endpoint
 * (no page of retries first), retries summed up with a count, a clean
 * "interrupted" with nothing left behind, and a load's progress that counts
 * its items to the end.
 */
const PASSWORD = 'cli ux';
const env = { AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined };

/** A 127.0.0.1 port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('network errors, Ctrl-C and progress', () => {
  let source: RegistryService;
  let work: string;
  let images: SyntheticImage[];
  let bundle: string;
  const spec = () => join(work, 'airlock.yaml');
  const key = () => join(work, 'airlock.key');
  const pub = () => join(work, 'airlock.pub');

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-cli-ux-it-'));
    source = await startRegistry();
    images = await generateImages({
      seed: 23,
      baseLayerSize: 500_000,
      images: [
        { repository: 'harness/ng-manager', tag: '1.0', layers: 3, layerSize: 1_000_000, sharedBaseLayers: 1 },
        { repository: 'harness/gateway', tag: '2.0', layers: 3, layerSize: 1_000_000, sharedBaseLayers: 1 },
        { repository: 'harness/pipeline', tag: '3.0', layers: 2, layerSize: 500_000, sharedBaseLayers: 1 },
      ],
    });
    await pushImages(source.url, images);
    const pair = generateKeyPair(PASSWORD);
    writeFileSync(key(), pair.privateKeyPem, { mode: 0o600 });
    writeFileSync(pub(), pair.publicKeyPem);
    writeFileSync(spec(), 'name: demo\nversion: 1.0.0\nimages:\n  - harness/ng-manager:1.0\n  - harness/gateway:2.0\n  - harness/pipeline:3.0\n');
    bundle = join(work, 'demo.tar');
    const packed = await airlock(['pack', '-f', spec(), '-o', bundle, '--key', key(), '--registry-mirror', `docker.io=${source.url}`], { env });
    assert.equal(packed.code, 0, packed.stderr);
  });

  after(async () => {
    await source?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('pack against a closed port: exit 4 with one error naming the endpoint and "connection refused", no retry lines', async () => {
    const port = await closedPort();
    const r = await airlock(['pack', '-f', spec(), '-o', join(work, 'never.tar'), '--key', key(), '--registry-mirror', `docker.io=http://127.0.0.1:${port}`], { env });
    assert.equal(r.code, 4, r.stderr);
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 2, r.stderr);
    assert.equal(lines[0], `airlock: error: registry mirror http://127.0.0.1:${port} (for docker.io): connection refused`);
    assert.match(lines[1]!, /^ {2}hint: check that the host is up/);
    assert.doesNotMatch(r.stderr, /retrying|ECONNREFUSED|UND_ERR/);

    // --json: the same, as the one error line.
    const j = await airlock(['pack', '-f', spec(), '-o', join(work, 'never.tar'), '--key', key(), '--registry-mirror', `docker.io=http://127.0.0.1:${port}`, '--json'], { env });
    assert.equal(j.code, 4);
    const out = jsonLines(j.stdout);
    assert.deepEqual(
      out.map((l) => [l.event, l.exitCode]),
      [['error', 4]],
    );
    assert.match(String(out[0]!.message), /connection refused$/);
  });

  test('load to a TLS registry without --ca-file: one line that says to pass --ca-file', async () => {
    const tls = await startRegistry({ tls: true });
    try {
      const r = await airlock(['load', bundle, '--key', pub(), '--registry', tls.host]);
      assert.equal(r.code, 4, r.stderr);
      const lines = r.stderr.split('\n').filter(Boolean);
      assert.deepEqual(lines, [`airlock: error: registry ${tls.host}: TLS: certificate signed by unknown authority: pass --ca-file`], r.stderr);
    } finally {
      await tls.stop();
    }
  });

  test('load with transient failures: one summary line with a count per endpoint and cause; the progress counts every item', async () => {
    const target = await startRegistry();
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: target.port });
    try {
      proxy.addFault({ match: /^POST \/v2\/.*\/blobs\/uploads\//, times: 3, kind: 'status', status: 503 });
      const r = await airlock(['load', bundle, '--key', pub(), '--registry', `127.0.0.1:${proxy.port}`, '--plain-http', '--json']);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const lines = jsonLines(r.stdout);
      const logs = lines.filter((l) => l.event === 'log');
      assert.deepEqual(
        logs.map((l) => [l.level, l.message]),
        [['warn', `http://127.0.0.1:${proxy.port}: HTTP 503: retried 3 times`]],
      );
      const push = lines.filter((l) => l.event === 'progress' && l.phase === 'push');
      const last = push.at(-1)!;
      assert.equal(last.itemsTotal, images.length);
      assert.equal(last.itemsDone, images.length, JSON.stringify(last));
      assert.equal(last.bytesDone, last.bytesTotal, 'the byte total is what was transferred');
      const report = resultOf<{ bytesUploaded: number }>(r.stdout, 'load');
      assert.equal(last.bytesDone, report.bytesUploaded);
      assert.ok((last.bytesMounted as number) > 0, 'the shared base layer is mounted and counted apart');
    } finally {
      await proxy.stop();
      await target.stop();
    }
  });

  test('Ctrl-C during pack: "airlock: interrupted", exit 130, no partial bundle or work folder left', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: source.port });
    const out = join(work, 'interrupted');
    const tmp = join(work, 'tmp');
    mkdirSync(out);
    mkdirSync(tmp);
    try {
      // The biggest layer stalls: pack sits in its download phase.
      const layer = images.flatMap((i) => i.blobs).sort((a, b) => b.size - a.size)[0]!;
      proxy.addFault({ match: new RegExp(`^GET /v2/.*/blobs/${layer.digest} `), times: 10, kind: 'stall', ms: 60_000 });
      let stderr = '';
      const r = await airlock(['pack', '-f', spec(), '-o', join(out, 'b.tar'), '--key', key(), '--registry-mirror', `docker.io=${proxy.url}`], {
        env: { ...env, TMPDIR: tmp },
        onSpawn: (child) => {
          child.stderr!.on('data', (c: Buffer) => {
            stderr += c.toString();
            if (/packing \d+ images/.test(stderr) && !child.killed) setTimeout(() => child.kill('SIGINT'), 300);
          });
        },
      });
      assert.equal(r.code, 130, r.stderr);
      assert.match(r.stderr, /packing \d+ images[^\n]*\nairlock: interrupted\n$/);
      assert.doesNotMatch(r.stderr, /error|bug/);
      assert.deepEqual(readdirSync(out), [], 'no .partial bundle');
      assert.deepEqual(readdirSync(tmp).filter((f) => !f.startsWith('tsx-')), [], 'no work folder');
    } finally {
      await proxy.stop();
    }
  });
});
