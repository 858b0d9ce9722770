import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import type { BundleIndex } from '../../shared/bundle/format.ts';
import { airlock } from '../helpers/cli.ts';
import { startFaultProxy } from '../services/faultProxy.ts';
import { generateImages, pushImages, type SyntheticImage } from '../services/fixtures.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { run, runBytes } from '../services/exec.ts';
import { copyGraph } from '../../shared/copy.ts';
import { RegistryClient } from '../../shared/registry/client.ts';
import { HttpTransport } from '../../shared/registry/transport.ts';
import { LayoutStore } from '../../shared/store/layout.ts';
import { RemoteStore } from '../../shared/store/remote.ts';
import { resultOf } from '../json-lines.ts';

/**
 * airlock pack end to end, through the real CLI, against real registries:
 * the bundle verifies, openssl accepts its signature, and `tar -xf` gives an
 * OCI layout from which skopeo reproduces every image with its digest.
 */
const PASSWORD = 'correct horse';
const env = { AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined };

describe('airlock pack', () => {
  let source: RegistryService;
  let work: string;
  let images: SyntheticImage[];
  let mirrorFlags: string[];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-pack-it-'));
    source = await startRegistry();
    images = await generateImages({
      seed: 7,
      baseLayerSize: 300_000,
      images: [
        { repository: 'harness/ng-manager', tag: '1.0', layers: 3, layerSize: 400_000, sharedBaseLayers: 2 },
        { repository: 'harness/gateway', tag: '2.0', layers: 3, layerSize: 200_000, sharedBaseLayers: 2, format: 'docker' },
        { repository: 'pause', tag: '3.9', layers: 1, layerSize: 50_000, platforms: ['linux/amd64', 'linux/arm64'] },
        { repository: 'library/nginx', tag: '1.25', layers: 2, layerSize: 100_000, sharedBaseLayers: 1 },
      ],
    });
    await pushImages(source.url, images);
    mirrorFlags = ['--registry-mirror', `docker.io=${source.url}`, '--registry-mirror', `registry.k8s.io=${source.url}`];

    const pair = generateKeyPair(PASSWORD);
    writeFileSync(join(work, 'airlock.key'), pair.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(work, 'airlock.pub'), pair.publicKeyPem);
    mkdirSync(join(work, 'deploy'));
    writeFileSync(
      join(work, 'deploy', 'app.yaml'),
      [
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata: { name: web }',
        'spec:',
        '  template:',
        '    spec:',
        '      containers:',
        '        - name: web',
        '          image: nginx:1.25',
        '---',
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata: { name: not-an-image }',
        'data: { image: "docker.io/harness/not-packed:9" }',
        '',
      ].join('\n'),
    );
    writeFileSync(join(work, 'images.txt'), '# Harness\ndocker.io/harness/gateway:2.0\nregistry.k8s.io/pause:3.9\n');
    writeFileSync(
      join(work, 'airlock.yaml'),
      [
        'name: demo',
        'version: 1.2.3',
        'platforms: [linux/amd64]',
        'images:',
        '  - harness/ng-manager:1.0',
        'imageLists: [images.txt]',
        'discoverImages: true',
        'manifests:',
        '  - path: ./deploy',
        '',
      ].join('\n'),
    );
  });

  after(async () => {
    await source?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('packs a signed bundle that verifies and extracts to an OCI layout skopeo reproduces', async () => {
    const bundle = join(work, 'demo.tar');
    const res = await airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', bundle, '--key', join(work, 'airlock.key'), ...mirrorFlags, '--json'], { env });
    assert.equal(res.code, 0, res.stderr + res.stdout);
    const summary = resultOf<Record<string, number | string>>(res.stdout, 'pack');
    assert.equal(summary.images, 4);
    assert.equal(summary.manifestFiles, 1);
    assert.ok((summary.savedBytes as number) >= 300_000, 'the shared base layer is stored once');
    assert.equal(summary.bundleBytes, statSync(bundle).size);
    assert.deepEqual(readdirSync(work).filter((f) => f.includes('partial')), []);
    // Wall time per phase (docs/json-output.md), in order; after start-up they add up to `seconds`.
    const phases = (summary as unknown as { phases: Record<string, number> }).phases;
    assert.deepEqual(Object.keys(phases), ['startup', 'prepare', 'resolve', 'layout', 'download', 'sync']);
    assert.ok(Object.values(phases).every((s) => s >= 0) && phases.startup! > 0 && phases.download! > 0, JSON.stringify(phases));
    const afterStartup = Object.entries(phases).filter(([name]) => name !== 'startup').reduce((a, [, s]) => a + s, 0);
    assert.ok(Math.abs(afterStartup - (summary.seconds as number)) < 0.02, `${afterStartup} vs ${summary.seconds}`);

    const verified = await airlock(['verify', bundle, '--key', join(work, 'airlock.pub')]);
    assert.equal(verified.code, 0, verified.stderr);

    const out = join(work, 'extracted');
    mkdirSync(out);
    await run('tar', ['-xf', bundle, '-C', out]);
    const index = JSON.parse(readFileSync(join(out, 'airlock.json'), 'utf8')) as BundleIndex;
    assert.deepEqual(index.images.map((i) => i.ref).sort(), [
      'docker.io/harness/gateway:2.0',
      'docker.io/harness/ng-manager:1.0',
      'docker.io/library/nginx:1.25',
      'registry.k8s.io/pause:3.9',
    ]);
    assert.deepEqual(index.platforms, ['linux/amd64']);
    // The signature is what DESIGN §2 says: openssl accepts it over the exact index bytes.
    writeFileSync(join(work, 'sig.der'), Buffer.from(readFileSync(join(out, 'airlock.json.sig'), 'utf8'), 'base64'));
    const openssl = await run('openssl', ['dgst', '-sha256', '-verify', join(work, 'airlock.pub'), '-signature', join(work, 'sig.der'), join(out, 'airlock.json')]);
    assert.match(openssl.stdout, /Verified OK/);
    assert.equal(readFileSync(join(out, 'manifests', 'deploy', 'app.yaml'), 'utf8').includes('nginx:1.25'), true);

    // Order (DESIGN §2): manifests, then the layout, blobs before the manifests that name them, index.json last.
    const paths = index.entries.map((e) => e.path);
    assert.equal(paths[0], 'manifests/deploy/app.yaml');
    assert.equal(paths[1], 'oci/oci-layout');
    assert.equal(paths.at(-1), 'oci/index.json');
    for (const img of index.images) {
      const at = paths.indexOf(`oci/blobs/sha256/${img.digest.slice(7)}`);
      assert.ok(at > 1, `${img.ref} is in the bundle`);
    }

    const target = await startRegistry();
    try {
      for (const img of index.images) {
        const original = images.find((i) => img.ref.endsWith(`/${i.repository}:${i.tag}`))!;
        const repo = img.ref.replace(/^[^/]+\//, '');
        if (img.mediaType.includes('vnd.oci.')) {
          await run('skopeo', ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${join(out, 'oci')}:${img.ref}`, `docker://${target.host}/${repo}`]);
        } else {
          // skopeo (containers/image) looks up only OCI-typed descriptors in an OCI layout's
          // index.json; a Docker v2 manifest keeps its bytes (and digest) in the bundle, so
          // it is read back with airlock's own layout store instead.
          const layout = await LayoutStore.open(join(out, 'oci'));
          const transport = new HttpTransport();
          try {
            const dest = new RemoteStore(new RegistryClient(target.host, transport, { plainHttp: true }), repo.split(':')[0]!);
            const root = await layout.resolve(img.ref);
            await dest.tag(await copyGraph(layout, dest, root), repo.split(':')[1]!);
          } finally {
            await transport.close();
          }
        }
        const raw = await runBytes('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${target.host}/${repo}`]);
        const digest = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
        assert.equal(digest, img.digest, `${img.ref} arrives with the bundle's digest`);
        if (original.children) {
          // pause is a two-platform index packed for linux/amd64: a filtered index with its one manifest.
          assert.notEqual(img.digest, original.digest);
          assert.deepEqual(img.platforms, ['linux/amd64']);
          const kept = JSON.parse(raw.toString()) as { manifests: { digest: string }[] };
          assert.deepEqual(kept.manifests.map((m) => m.digest), [original.children.find((c) => c.platform.architecture === 'amd64')!.digest]);
        } else {
          assert.equal(digest, original.digest, `${img.ref} keeps its source digest`);
          assert.deepEqual(img.platforms, ['linux/amd64']);
        }
      }
    } finally {
      await target.stop();
    }

    const again = await airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', bundle, '--key', join(work, 'airlock.key'), ...mirrorFlags], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /packed .*demo\.tar: demo 1\.2\.3\n {2}images {10}4\n/);

    // --volume-size: the same bundle as volumes plus a parts list, and no single file.
    const volumes = join(work, 'volumes');
    mkdirSync(volumes);
    const split = await airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', join(volumes, 'demo.tar'), '--key', join(work, 'airlock.key'), '--volume-size', '1M', ...mirrorFlags, '--json'], { env });
    assert.equal(split.code, 0, split.stderr);
    const files = readdirSync(volumes).sort();
    assert.deepEqual(resultOf<{ split: { files: string[] } }>(split.stdout, 'pack').split.files.map((f) => f.split('/').pop()).sort(), files);
    assert.equal(files.includes('demo.tar'), false);
    assert.equal(files.at(-1), 'demo.tar.parts.json');
    assert.ok(files.length >= 3, files.join(' '));
    const fromVolumes = await airlock(['verify', join(volumes, 'demo.tar.000'), '--key', join(work, 'airlock.pub')]);
    assert.equal(fromVolumes.code, 0, fromVolumes.stderr);
  });

  test('names every missing image at once and writes nothing', async () => {
    const spec = join(work, 'missing.yaml');
    writeFileSync(spec, 'name: m\nversion: "1"\nimages:\n  - harness/ng-manager:1.0\n  - harness/nope:1\n  - harness/gone:2\n');
    const bundle = join(work, 'missing.tar');
    const res = await airlock(['pack', '-f', spec, '-o', bundle, '--key', join(work, 'airlock.key'), ...mirrorFlags], { env });
    assert.equal(res.code, 4, res.stderr);
    assert.match(res.stderr, /2 of 3 images cannot be packed; nothing was downloaded/);
    assert.match(res.stderr, /docker\.io\/harness\/nope:1: .*not found .*\(wanted by .*missing\.yaml:5\)/);
    assert.match(res.stderr, /docker\.io\/harness\/gone:2: .*not found/);
    assert.deepEqual(readdirSync(work).filter((f) => f.startsWith('missing.tar') || f.includes('partial')), []);
  });

  test('refuses two registries that map to one enclave repository (exit 2)', async () => {
    const spec = join(work, 'conflict.yaml');
    writeFileSync(spec, 'name: c\nversion: "1"\nimages:\n  - docker.io/harness/ng-manager:1.0\n  - quay.io/harness/ng-manager:1.1\n');
    const res = await airlock(['pack', '-f', spec, '-o', join(work, 'conflict.tar'), '--key', join(work, 'airlock.key'), ...mirrorFlags], { env });
    assert.equal(res.code, 2, res.stderr);
    assert.match(res.stderr, /harness\/ng-manager <- docker\.io\/harness\/ng-manager:1\.0, quay\.io\/harness\/ng-manager:1\.1/);
  });

  test('a wrong key password stops before any network work (exit 2)', async () => {
    const res = await airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', join(work, 'pw.tar'), '--key', join(work, 'airlock.key'), ...mirrorFlags], {
      env: { AIRLOCK_PASSWORD: 'wrong', COSIGN_PASSWORD: undefined },
    });
    assert.equal(res.code, 2, res.stderr);
    assert.match(res.stderr, /password/i);
  });

  test('Ctrl-C while downloading leaves no file under the output name and no partial file', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: source.port });
    try {
      proxy.addFault({ match: /GET \/v2\/.*\/blobs\/sha256:/, times: 1000, kind: 'stall', ms: 60_000 });
      const bundle = join(work, 'interrupted.tar');
      const res = await airlock(
        ['pack', '-f', join(work, 'airlock.yaml'), '-o', bundle, '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${proxy.url}`, '--registry-mirror', `registry.k8s.io=${proxy.url}`],
        {
          env,
          onSpawn: (child) => {
            const poll = setInterval(() => {
              if (proxy.stats().requests.some((r) => /blobs\/sha256:.* HTTP/.test(r) && r.startsWith('GET'))) {
                clearInterval(poll);
                // The planning pass reads configs too; wait until layers are being fetched.
                setTimeout(() => child.kill('SIGINT'), 500);
              }
            }, 50);
            child.on('close', () => clearInterval(poll));
          },
        },
      );
      assert.equal(res.code, 130, res.stderr);
      assert.match(res.stderr, /interrupted/);
      assert.deepEqual(readdirSync(work).filter((f) => f.startsWith('interrupted') || f.includes('partial')), []);
    } finally {
      await proxy.stop();
    }
  });

  test('a blob the registry serves corrupted: exit 3 naming it, no file under the output name', async () => {
    const [bad] = await generateImages({ seed: 5, images: [{ repository: 'harness/corrupt', tag: '1', layers: 1, layerSize: 300_000 }] });
    await pushImages(source.url, [bad!]);
    const layer = bad!.blobs.find((b) => b.mediaType.includes('layer'))!;
    const hex = layer.digest.slice(7);
    const data = join(source.dataDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    const bytes = readFileSync(data);
    bytes[1000] = bytes[1000]! ^ 0xff;
    writeFileSync(data, bytes);
    const spec = join(work, 'corrupt.yaml');
    writeFileSync(spec, 'name: c\nversion: "1"\nimages:\n  - harness/corrupt:1\n  - harness/ng-manager:1.0\n');
    const res = await airlock(['pack', '-f', spec, '-o', join(work, 'corrupt.tar'), '--key', join(work, 'airlock.key'), ...mirrorFlags], { env });
    assert.equal(res.code, 3, res.stderr);
    assert.match(res.stderr, new RegExp(`${layer.digest}`));
    assert.deepEqual(readdirSync(work).filter((f) => f.startsWith('corrupt.tar') || f.includes('partial')), []);
  });
});
