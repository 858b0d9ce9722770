import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import type { BundleIndex } from '../../shared/bundle/format.ts';
import { airlock, type CliResult } from '../helpers/cli.ts';
import { startFaultProxy } from '../services/faultProxy.ts';
import { generateImages, pushImages, type SyntheticImage } from '../services/fixtures.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { startS3 } from '../services/s3.ts';
import { runBytes } from '../services/exec.ts';
import { skopeoFlags } from '../services/skopeo.ts';
import { walk } from '../helpers/hostile.ts';
import { resultOf } from '../json-lines.ts';

/**
 * airlock load, through the real CLI, into real registries: every image
 * arrives with its bundle digest, a second load uploads nothing, and bad
 * bundles, tag conflicts, read-only registries, interruptions and restarts
 * behave as issue #4 says.
 */
const PASSWORD = 'load test';
const env = { AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined };

describe('airlock load', () => {
  let source: RegistryService;
  let work: string;
  let bundle: string;
  let index: BundleIndex;
  let images: SyntheticImage[];
  const pub = () => join(work, 'airlock.pub');

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-load-it-'));
    source = await startRegistry();
    images = await generateImages({
      seed: 11,
      baseLayerSize: 2_000_000,
      images: [
        { repository: 'harness/ng-manager', tag: '1.0', layers: 4, layerSize: 1_500_000, sharedBaseLayers: 2 },
        { repository: 'harness/gateway', tag: '2.0', layers: 4, layerSize: 1_500_000, sharedBaseLayers: 2, format: 'docker' },
        { repository: 'harness/pipeline', tag: '3.0', layers: 4, layerSize: 1_500_000, sharedBaseLayers: 2 },
        { repository: 'pause', tag: '3.9', layers: 1, layerSize: 50_000, platforms: ['linux/amd64', 'linux/arm64'] },
      ],
    });
    await pushImages(source.url, images);
    const pair = generateKeyPair(PASSWORD);
    writeFileSync(join(work, 'airlock.key'), pair.privateKeyPem, { mode: 0o600 });
    writeFileSync(pub(), pair.publicKeyPem);
    writeFileSync(
      join(work, 'airlock.yaml'),
      'name: demo\nversion: 1.0.0\nimages:\n  - harness/ng-manager:1.0\n  - harness/gateway:2.0\n  - harness/pipeline:3.0\n  - registry.k8s.io/pause:3.9\n',
    );
    bundle = join(work, 'demo.tar');
    const packed = await airlock(
      ['pack', '-f', join(work, 'airlock.yaml'), '-o', bundle, '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${source.url}`, '--registry-mirror', `registry.k8s.io=${source.url}`],
      { env },
    );
    assert.equal(packed.code, 0, packed.stderr);
    const extracted = join(work, 'x');
    mkdirSync(extracted);
    const { execFileSync } = await import('node:child_process');
    execFileSync('tar', ['-xf', bundle, '-C', extracted, 'airlock.json']);
    index = JSON.parse(readFileSync(join(extracted, 'airlock.json'), 'utf8')) as BundleIndex;
  });

  after(async () => {
    await source?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const load = (target: RegistryService, extra: string[] = [], opts: Parameters<typeof airlock>[1] = {}): Promise<CliResult> =>
    airlock(['load', bundle, '--key', pub(), '--registry', target.host, ...(target.caFile ? ['--ca-file', target.caFile] : ['--plain-http']), ...extra], opts);

  /** The digest each bundle image has in `target` now (undefined when absent). */
  async function digestsIn(target: RegistryService, prefix = ''): Promise<Map<string, string | undefined>> {
    const out = new Map<string, string | undefined>();
    for (const img of index.images) {
      const path = img.ref.replace(/^[^/]+\//, '');
      try {
        const raw = await runBytes('skopeo', ['inspect', '--raw', ...skopeoFlags(target), `docker://${target.host}/${prefix}${path}`]);
        out.set(img.ref, `sha256:${createHash('sha256').update(raw).digest('hex')}`);
      } catch {
        out.set(img.ref, undefined);
      }
    }
    return out;
  }

  async function assertLoaded(target: RegistryService, prefix = '') {
    const got = await digestsIn(target, prefix);
    for (const img of index.images) assert.equal(got.get(img.ref), img.digest, `${img.ref} in ${target.host}/${prefix}`);
  }

  test('loads every image with its digest; a second load uploads nothing and changes no tag', async () => {
    const target = await startRegistry();
    try {
      const first = await load(target, ['--json']);
      assert.equal(first.code, 0, first.stderr);
      const report = resultOf<{ images: { status: string }[]; blobsUploaded: number; blobsMounted: number; phases: Record<string, number> }>(first.stdout, 'load');
      assert.deepEqual(report.images.map((i) => i.status), ['pushed', 'pushed', 'pushed', 'pushed']);
      assert.ok(report.blobsMounted >= 2, 'shared base layers are mounted, not uploaded again');
      assert.deepEqual(Object.keys(report.phases), ['check', 'preflight', 'plan', 'push', 'tags']);
      // Each repository's push probe (an upload opened under push scope) is the upload of its first blob: no request of its own.
      // Each manifest's bytes go up as a blob before the manifest itself (stored-link.ts): one upload each too.
      const uploadsOpened = await target.requests(/^POST \/v2\/.*\/blobs\/uploads\/ /);
      const manifestsByDigest = await target.requests(/^PUT \/v2\/.*\/manifests\/sha256:/);
      assert.equal(uploadsOpened.length, report.blobsUploaded + manifestsByDigest.length, 'one upload opened per blob and manifest uploaded, the probes included');
      assert.deepEqual(await target.requests(/^DELETE /), [], 'no probe session cancelled: each one carried a blob');
      await assertLoaded(target);
      // The pause index was packed whole (no platform in the spec): both platforms are there.
      const pause = images.find((i) => i.repository === 'pause')!;
      assert.equal(index.images.find((i) => i.ref.endsWith('pause:3.9'))!.digest, pause.digest);

      const writesBefore = (await target.requests(/^(PUT|POST|PATCH|DELETE) /)).length;
      const requestsBefore = (await target.requests()).length;
      const second = await load(target, ['--json']);
      assert.equal(second.code, 0, second.stderr);
      const again = resultOf<{ images: { status: string }[]; blobsUploaded: number; phases: Record<string, number> }>(second.stdout, 'load');
      assert.deepEqual(again.images.map((i) => i.status), ['present', 'present', 'present', 'present']);
      assert.equal(again.blobsUploaded, 0);
      assert.equal((await target.requests(/^(PUT|POST|PATCH|DELETE) /)).length, writesBefore, 'the second load writes nothing');
      // A reload looks once at each tag (a GET, on a kept-alive connection), after the registry's preflight, and at nothing else.
      const reloadRequests = (await target.requests()).slice(requestsBefore);
      assert.deepEqual(reloadRequests.filter((r) => !r.startsWith('GET /v2/ ')).map((r) => r.replace(/\/v2\/.*\/manifests\/[^ ]+/, '/v2/R/manifests/TAG')), Array(4).fill('GET /v2/R/manifests/TAG HTTP/1.1'));
      assert.equal(again.phases.push, undefined, 'no push phase');
      assert.equal((await target.requests(/ \/v2\/.*\/blobs\//)).filter((r) => !r.startsWith('HEAD')).length > 0, true);
    } finally {
      await target.stop();
    }
  });

  test('--dry-run verifies and prints the plan, writing nothing; a prefix maps every image under it', async () => {
    const target = await startRegistry();
    try {
      const dry = await load(target, ['--dry-run']);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /dry run: nothing was written/);
      assert.match(dry.stdout, /harness\/ng-manager:1\.0 +would push/);
      assert.deepEqual(await target.requests(/^(PUT|POST|PATCH|DELETE) /), []);
      const prefixed = await airlock(['load', bundle, '--key', pub(), '--registry', `${target.host}/mirror/prod`, '--plain-http']);
      assert.equal(prefixed.code, 0, prefixed.stderr);
      await assertLoaded(target, 'mirror/prod/');
    } finally {
      await target.stop();
    }
  });

  test('a split bundle loads from its first volume', async () => {
    const target = await startRegistry();
    const dir = mkdtempSync(join(work, 'volumes-'));
    try {
      const split = await airlock(['split', bundle, '--volume-size', '4M', '--out-dir', dir]);
      assert.equal(split.code, 0, split.stderr);
      const res = await airlock(['load', join(dir, 'demo.tar.000'), '--key', pub(), '--registry', target.host, '--plain-http']);
      assert.equal(res.code, 0, res.stderr);
      await assertLoaded(target);
    } finally {
      await target.stop();
    }
  });

  test('a bundle in S3 loads in place (ranged reads, no local copy)', async () => {
    const s3 = await startS3();
    const target = await startRegistry();
    try {
      const env = { ...s3.env, AWS_ENDPOINT_URL: undefined, AWS_ENDPOINT_URL_S3: undefined, AWS_PROFILE: undefined };
      const up = await airlock(['upload', bundle, `s3://${s3.bucket}/bundles/`, '--s3-endpoint', s3.endpoint], { env });
      assert.equal(up.code, 0, up.stderr);
      const res = await airlock(['load', `s3://${s3.bucket}/bundles/demo.tar`, '--s3-endpoint', s3.endpoint, '--key', pub(), '--registry', target.host, '--plain-http'], { env });
      assert.equal(res.code, 0, res.stderr);
      await assertLoaded(target);
    } finally {
      await target.stop();
      await s3.stop();
    }
  });

  test('a tampered blob mid-stream: exit 3, no tag written, and no manifest referencing the tampered blob', async () => {
    const target = await startRegistry();
    try {
      const bad = join(work, 'tampered.tar');
      copyFileSync(bundle, bad);
      const tar = readFileSync(bad);
      const layer = index.entries.filter((e) => e.path.startsWith('oci/blobs/')).sort((a, b) => b.size - a.size)[0]!;
      // Find the layer's data by its header name, flip a byte in its middle.
      const at = tar.indexOf(Buffer.from(layer.path)) + 512 + Math.floor(layer.size / 2);
      tar[at] = tar[at]! ^ 0xff;
      writeFileSync(bad, tar);
      const res = await airlock(['load', bad, '--key', pub(), '--registry', target.host, '--plain-http']);
      assert.equal(res.code, 3, res.stderr);
      assert.match(res.stderr, new RegExp(`entry ${layer.path}: content has digest`));
      // Manifests go out by digest once every byte they reference checked out; tags only after the whole bundle did.
      assert.deepEqual(await target.requests(/^PUT \/v2\/.*\/manifests\/(?!sha256:)/), [], 'no tag');
      // None referencing the tampered layer: each manifest went out only once every byte it references checked out.
      const entries = walk(tar).entries;
      const body = (digest: string) => {
        const e = entries.find((x) => x.path === `oci/blobs/sha256/${digest.slice(7)}`)!;
        return JSON.parse(tar.subarray(e.dataAt, e.dataAt + e.size).toString()) as { layers?: { digest: string }[] };
      };
      const referencing = index.images.filter((img) => body(img.digest).layers?.some((l) => `oci/blobs/sha256/${l.digest.slice(7)}` === layer.path));
      assert.ok(referencing.length > 0);
      for (const img of referencing) assert.deepEqual(await target.requests(new RegExp(`^PUT /v2/.*/manifests/${img.digest}`)), [], img.ref);
    } finally {
      await target.stop();
    }
  });

  test('a tag that points elsewhere is refused (exit 5) and left alone, unless --overwrite-tags', async () => {
    const target = await startRegistry();
    try {
      const other = await generateImages({ seed: 99, images: [{ repository: 'harness/gateway', tag: '2.0', layers: 1, layerSize: 1000 }] });
      await pushImages(target.url, other);
      const writesBefore = (await target.requests(/^(PUT|POST|PATCH|DELETE) /)).length;
      const res = await load(target);
      assert.equal(res.code, 5, res.stderr);
      assert.match(res.stderr, new RegExp(`harness/gateway:2\\.0 is ${other[0]!.digest}, the bundle has sha256:`));
      assert.match(res.stderr, /nothing was written/);
      assert.equal((await target.requests(/^(PUT|POST|PATCH|DELETE) /)).length, writesBefore, 'nothing was written');
      assert.equal((await digestsIn(target)).get('docker.io/harness/gateway:2.0'), other[0]!.digest);

      const forced = await load(target, ['--overwrite-tags']);
      assert.equal(forced.code, 0, forced.stderr);
      assert.match(forced.stdout, /harness\/gateway:2\.0 +retagged/);
      await assertLoaded(target);
    } finally {
      await target.stop();
    }
  });

  test('a read-only registry: exit 4 naming the registry, the repository and the refused action', async () => {
    const target = await startRegistry({ readOnly: true });
    try {
      const res = await load(target);
      assert.equal(res.code, 4, res.stderr);
      // The push-scope preflight finds it before any blob is sent.
      assert.match(res.stderr, new RegExp(`refuses pushes to .*\\n  ${target.host}/harness/.*: HTTP 405`));
      assert.match(res.stderr, /read-only/);
    } finally {
      await target.stop();
    }
  });

  test('Basic auth over plain HTTP, and token auth over HTTPS with the enclave CA', async () => {
    for (const opts of [{ auth: 'basic' as const }, { auth: 'token' as const, tls: true }]) {
      const target = await startRegistry(opts);
      try {
        const refused = await load(target);
        assert.equal(refused.code, 4, refused.stderr);
        assert.match(refused.stderr, /HTTP 401/);
        const res = await load(target, ['--registry-username', target.username!, '--registry-password-env', 'ENCLAVE_PW'], { env: { ENCLAVE_PW: target.password } });
        assert.equal(res.code, 0, res.stderr);
        assert.equal(res.stderr.includes(target.password!), false, 'the password is never printed');
        await assertLoaded(target);
      } finally {
        await target.stop();
      }
    }
  });

  test('SIGKILL part way, then the same command completes without sending finished blobs again', async () => {
    const target = await startRegistry();
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: target.port });
    try {
      const viaProxy = ['load', bundle, '--key', pub(), '--registry', `127.0.0.1:${proxy.port}`, '--plain-http', '--jobs', '2'];
      const killed = await airlock(viaProxy, {
        onSpawn: (child) => {
          const poll = setInterval(() => {
            void target.requests(/^PUT \/v2\/.*\/blobs\/uploads\//).then((done) => {
              if (done.length >= 2) {
                clearInterval(poll);
                proxy.addFault({ match: /blobs\/uploads/, times: 1000, kind: 'stall', ms: 60_000 });
                setTimeout(() => child.kill('SIGKILL'), 300);
              }
            });
          }, 25);
          child.on('close', () => clearInterval(poll));
        },
      });
      assert.equal(killed.signal, 'SIGKILL');
      assert.deepEqual(await target.requests(/^PUT \/v2\/.*\/manifests\//), [], 'no manifest before every blob is in');
      const uploadedBefore = (await target.requests(/^PUT \/v2\/.*\/blobs\/uploads\//)).length;
      proxy.clearFaults();

      const again = await load(target, ['--json']);
      assert.equal(again.code, 0, again.stderr);
      const report = resultOf<{ blobsPresent: number; blobsMounted: number }>(again.stdout, 'load');
      assert.ok(report.blobsPresent + report.blobsMounted >= uploadedBefore, `blobs finished before the kill are not sent again (${JSON.stringify(report)})`);
      await assertLoaded(target);
    } finally {
      await proxy.stop();
      await target.stop();
    }
  });

  test('the registry restarted part way, then the same command completes', async () => {
    const target = await startRegistry();
    try {
      let restarted: Promise<void> | undefined;
      const first = await load(target, ['--jobs', '2'], {
        onSpawn: (child) => {
          const poll = setInterval(() => {
            void target.requests(/^PUT \/v2\/.*\/blobs\/uploads\//).then((done) => {
              if (done.length >= 1 && !restarted) {
                clearInterval(poll);
                restarted = target.restart();
              }
            });
          }, 25);
          child.on('close', () => clearInterval(poll));
        },
      });
      await restarted;
      assert.ok(first.code === 0 || first.code === 4, `exit ${first.code}: ${first.stderr}`);
      const again = await load(target);
      assert.equal(again.code, 0, again.stderr);
      await assertLoaded(target);
    } finally {
      await target.stop();
    }
  });
});
