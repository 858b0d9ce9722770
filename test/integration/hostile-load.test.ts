import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import type { BundleIndex } from '../../shared/bundle/format.ts';
import { airlock } from '../helpers/cli.ts';
import { hostileCases, walk } from '../helpers/hostile.ts';
import { generateImages, pushImages } from '../services/fixtures.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';

/**
 * load == verify on hostile bundles: each variant of a real packed bundle
 * (built byte by byte from it, as an attacker would) is exit 3 for both
 * `airlock verify` and `airlock load` (never exit 0, never a crash), and the
 * registry receives no manifest and no tag from any of them. Then the good
 * bundle loads, and GNU tar lists exactly its signed index.
 */
const PASSWORD = 'hostile test';
const env = { AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined };

describe('hostile bundles: verify and load agree', () => {
  let source: RegistryService;
  let target: RegistryService;
  let work: string;
  let bundle: string;
  let tar: Buffer;
  let index: BundleIndex;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-hostile-it-'));
    [source, target] = await Promise.all([startRegistry(), startRegistry()]);
    const images = await generateImages({
      seed: 23,
      baseLayerSize: 300_000,
      images: [
        { repository: 'harness/ng-manager', tag: '1.0', layers: 2, layerSize: 200_000, sharedBaseLayers: 1 },
        { repository: 'harness/gateway', tag: '2.0', layers: 2, layerSize: 200_000, sharedBaseLayers: 1, format: 'docker' },
      ],
    });
    await pushImages(source.url, images);
    const pair = generateKeyPair(PASSWORD);
    writeFileSync(join(work, 'airlock.key'), pair.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(work, 'airlock.pub'), pair.publicKeyPem);
    mkdirSync(join(work, 'deploy'));
    writeFileSync(join(work, 'deploy', 'app.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n');
    writeFileSync(join(work, 'airlock.yaml'), 'name: demo\nversion: 1.0.0\nimages:\n  - harness/ng-manager:1.0\n  - harness/gateway:2.0\nmanifests:\n  - path: deploy\n');
    bundle = join(work, 'demo.tar');
    const packed = await airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', bundle, '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${source.url}`], { env });
    assert.equal(packed.code, 0, packed.stderr);
    tar = readFileSync(bundle);
    index = JSON.parse(tar.subarray(512, 512 + parseInt(tar.subarray(124, 135).toString(), 8)).toString()) as BundleIndex;
  });

  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  /** The bundle paths of one image's config and first layer, read from the bundle's own OCI manifest. */
  function configAndLayer(): { config: string; layer: string } {
    const entries = walk(tar).entries;
    const body = (path: string) => {
      const e = entries.find((x) => x.path === path)!;
      return tar.subarray(e.dataAt, e.dataAt + e.size);
    };
    const image = index.images.find((i) => i.ref.includes('ng-manager'))!;
    const manifest = JSON.parse(body(`oci/blobs/sha256/${image.digest.slice(7)}`).toString()) as { config: { digest: string }; layers: { digest: string }[] };
    return { config: `oci/blobs/sha256/${manifest.config.digest.slice(7)}`, layer: `oci/blobs/sha256/${manifest.layers.at(-1)!.digest.slice(7)}` };
  }

  test('every hostile variant is exit 3 for verify and for load, and no tag is set in the registry', async () => {
    const cases = hostileCases(tar, { victim: 'manifests/deploy/app.yaml', ...configAndLayer() });
    assert.ok(cases.length >= 24, `${cases.length} cases`);
    const limit = pLimit(3);
    const outcomes = await Promise.all(
      cases.map((c, i) =>
        limit(async () => {
          const file = join(work, `hostile-${i}.tar`);
          writeFileSync(file, c.bytes);
          // verify's refusal of every case is a unit test (both readers); its exit code through the CLI is checked once per finding here.
          const verify = cases.findIndex((x) => x.finding === c.finding) === i ? await airlock(['verify', file, '--key', join(work, 'airlock.pub')]) : undefined;
          // A tampered blob must be refused while it uploads: into an empty registry, where nothing is skipped.
          const into = c.finding === 6 ? await startRegistry() : target;
          try {
            const load = await airlock(['load', file, '--key', join(work, 'airlock.pub'), '--registry', into.host, '--plain-http']);
            const named = into === target ? [] : await into.requests(/^PUT .*\/manifests\/(?!sha256:)/);
            return { c, verify, load, named };
          } finally {
            rmSync(file);
            if (into !== target) await into.stop();
          }
        }),
      ),
    );
    for (const { c, verify, load, named } of outcomes) {
      const what = `finding ${c.finding}: ${c.name}`;
      if (verify) {
        assert.equal(verify.code, 3, `${what}: verify said ${verify.stdout}${verify.stderr}`);
        assert.match(verify.stderr, c.refusal, `${what} (verify)`);
      }
      assert.equal(load.code, 3, `${what}: load said ${load.stdout}${load.stderr}`);
      assert.match(load.stderr, c.refusal, `${what} (load)`);
      assert.doesNotMatch(load.stderr, /Unhandled|this is a bug/, what);
      assert.deepEqual(named, [], `${what}: no tag`);
    }
    // A manifest may go out by digest once every byte it references checked out; a tag only after the whole bundle did.
    assert.deepEqual(await target.requests(/^PUT .*\/manifests\/(?!sha256:)/), [], 'no tag from any hostile bundle');
  });

  test('the good bundle loads; GNU tar lists exactly its signed index', async () => {
    const listed = execFileSync('tar', ['-tf', bundle]).toString().split('\n').filter(Boolean);
    assert.deepEqual(listed, ['airlock.json', 'airlock.json.sig', ...index.entries.map((e) => e.path)]);
    const load = await airlock(['load', bundle, '--key', join(work, 'airlock.pub'), '--registry', target.host, '--plain-http']);
    assert.equal(load.code, 0, load.stderr);
    assert.equal((await target.requests(/^PUT .*\/manifests\//)).length > 0, true);
  });
});
