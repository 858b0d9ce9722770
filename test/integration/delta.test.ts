import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import type { BundleIndex } from '../../shared/bundle/format.ts';
import type { Inventory } from '../../shared/inventory/format.ts';
import { airlock, type CliResult } from '../helpers/cli.ts';
import { generateImages, pushImages, type ImageSpec, type SyntheticImage } from '../services/fixtures.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { startQuirkProxy } from '../services/quirkProxy.ts';
import { runBytes } from '../services/exec.ts';
import { skopeoFlags } from '../services/skopeo.ts';

/**
 * Delta bundles against real registries: release 1 packed and loaded;
 * release 2 (unchanged images, new tags on the same base layers, new images
 * on new base layers) packed with --since the release-1 bundle, its
 * airlock.json and an inventory of the loaded registry (the same delta each
 * time); the delta verifies, loads into the release-1 enclave uploading no
 * release-1 blob, is refused (exit 5) by an empty registry that stays empty,
 * and mounts a required blob from another repository of the enclave.
 */
const PASSWORD = 'delta test';
const env = { AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined };
const SEED = 41;
const BASE = 1_000_000;

const release1: ImageSpec[] = [
  { repository: 'harness/ng-manager', tag: '1.0', layers: 3, layerSize: 400_000, sharedBaseLayers: 2 },
  { repository: 'harness/gateway', tag: '1.0', layers: 3, layerSize: 400_000, sharedBaseLayers: 2, format: 'docker' },
  { repository: 'harness/pipeline', tag: '1.0', layers: 3, layerSize: 400_000, sharedBaseLayers: 2 },
  { repository: 'pause', tag: '3.9', layers: 1, layerSize: 30_000, platforms: ['linux/amd64', 'linux/arm64'] },
];
/** Release 2, same seed: unchanged images, new tags on the release-1 base layers, one new image. */
const release2Same: ImageSpec[] = [
  release1[0]!,
  release1[3]!,
  { repository: 'harness/gateway', tag: '2.0', layers: 3, layerSize: 400_000, sharedBaseLayers: 2, format: 'docker' },
  { repository: 'harness/pipeline', tag: '2.0', layers: 3, layerSize: 400_000, sharedBaseLayers: 2 },
  { repository: 'harness/ci-manager', tag: '1.0', layers: 3, layerSize: 400_000, sharedBaseLayers: 2 },
];
/** Release 2, another seed: an image on new base layers. */
const release2New: ImageSpec[] = [{ repository: 'harness/sto', tag: '1.0', layers: 3, layerSize: 400_000, sharedBaseLayers: 2 }];

const refsOf = (specs: ImageSpec[]) => specs.map((s) => `  - ${s.repository.includes('/') ? s.repository : `registry.k8s.io/${s.repository}`}:${s.tag}`).join('\n');

describe('delta bundles (pack --since, load of a delta)', () => {
  let source: RegistryService;
  let enclave: RegistryService;
  let work: string;
  let r1Images: SyntheticImage[];
  let r2Images: SyntheticImage[];
  const key = () => join(work, 'airlock.key');
  const pub = () => join(work, 'airlock.pub');
  const r1 = () => join(work, 'release1.tar');

  const pack = (spec: string, output: string, extra: string[] = []): Promise<CliResult> =>
    airlock(['pack', '-f', spec, '-o', output, '--key', key(), '--registry-mirror', `docker.io=${source.url}`, '--registry-mirror', `registry.k8s.io=${source.url}`, ...extra], { env });
  const load = (bundle: string, target: RegistryService, extra: string[] = []): Promise<CliResult> =>
    airlock(['load', bundle, '--key', pub(), '--registry', target.host, '--plain-http', ...extra]);

  function indexOf(bundle: string): BundleIndex {
    const dir = mkdtempSync(join(work, 'x-'));
    execFileSync('tar', ['-xf', bundle, '-C', dir, 'airlock.json']);
    return JSON.parse(readFileSync(join(dir, 'airlock.json'), 'utf8')) as BundleIndex;
  }
  const carriedBlobs = (index: BundleIndex) => index.entries.filter((e) => e.path.startsWith('oci/blobs/')).map((e) => e.path).sort();
  const requiredDigests = (index: BundleIndex) => (index.requires ?? []).map((r) => r.digest).sort();

  /** Digests of every blob PUT (an upload finished) into `target` so far. */
  async function uploadedDigests(target: RegistryService): Promise<Set<string>> {
    const puts = await target.requests(/^PUT \/v2\/.*\/blobs\/uploads\//);
    return new Set(puts.map((r) => decodeURIComponent(/[?&]digest=([^&\s]+)/.exec(r)?.[1] ?? '')).filter((d) => d !== ''));
  }

  async function digestIn(target: RegistryService, path: string): Promise<string | undefined> {
    try {
      const raw = await runBytes('skopeo', ['inspect', '--raw', ...skopeoFlags(target), `docker://${target.host}/${path}`]);
      return `sha256:${createHash('sha256').update(raw).digest('hex')}`;
    } catch {
      return undefined;
    }
  }

  async function assertRelease2In(target: RegistryService): Promise<void> {
    for (const img of r2Images) assert.equal(await digestIn(target, `${img.repository}:${img.tag}`), img.digest, `${img.repository}:${img.tag}`);
  }

  async function catalogOf(target: RegistryService): Promise<string[]> {
    const res = await fetch(`${target.url}/v2/_catalog`);
    return ((await res.json()) as { repositories: string[] }).repositories;
  }

  /** An inventory of the release-1 enclave, built from what the fixtures pushed there (the format airlock inventory writes). */
  function inventoryOf(images: SyntheticImage[], registry: string): Inventory {
    const repositories = [...new Set(images.map((i) => i.repository))].sort();
    const inv: Inventory = { airlockInventory: 1, registry, created: new Date().toISOString(), source: 'catalog', repositories, tags: {}, manifests: {}, blobs: {} };
    for (const img of images) {
      const at = repositories.indexOf(img.repository);
      (inv.tags[img.repository] ??= {})[img.tag] = img.digest;
      inv.manifests[img.digest] = at;
      for (const c of img.children ?? []) inv.manifests[c.digest] = at;
      for (const b of img.blobs) inv.blobs[b.digest] ??= [b.size, at];
    }
    return inv;
  }

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-delta-it-'));
    source = await startRegistry();
    enclave = await startRegistry();
    r1Images = await generateImages({ seed: SEED, baseLayerSize: BASE, images: release1 });
    r2Images = [
      ...(await generateImages({ seed: SEED, baseLayerSize: BASE, images: release2Same })),
      ...(await generateImages({ seed: SEED + 1, baseLayerSize: BASE, images: release2New })),
    ];
    await pushImages(source.url, [...r1Images, ...r2Images]);
    const pair = generateKeyPair(PASSWORD);
    writeFileSync(key(), pair.privateKeyPem, { mode: 0o600 });
    writeFileSync(pub(), pair.publicKeyPem);
    writeFileSync(join(work, 'release1.yaml'), `name: harness\nversion: 1.0.0\nimages:\n${refsOf(release1)}\n`);
    writeFileSync(join(work, 'release2.yaml'), `name: harness\nversion: 2.0.0\nimages:\n${refsOf([...release2Same, ...release2New])}\n`);
    const packed = await pack(join(work, 'release1.yaml'), r1());
    assert.equal(packed.code, 0, packed.stderr);
    const loaded = await load(r1(), enclave);
    assert.equal(loaded.code, 0, loaded.stderr);
  });

  after(async () => {
    await source?.stop();
    await enclave?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  let delta: string;
  let deltaIndex: BundleIndex;

  test('--since the release-1 bundle: only new blobs are carried, the rest required; the summary says what was left out', async () => {
    delta = join(work, 'release2-delta.tar');
    const getsBefore = (await source.requests(/^GET \/v2\/.*\/blobs\/sha256:/)).length;
    const packed = await pack(join(work, 'release2.yaml'), delta, ['--since', r1(), '--json']);
    assert.equal(packed.code, 0, packed.stderr);
    const summary = JSON.parse(packed.stdout.trim().split('\n').pop()!) as { delta: { blobsLeftOut: number; bytesLeftOut: number; since: { name: string; version: string } } };
    deltaIndex = indexOf(delta);
    const r1Blobs = new Set(r1Images.flatMap((i) => i.blobs.map((b) => b.digest)));
    const r2Blobs = new Map(r2Images.flatMap((i) => i.blobs.map((b) => [b.digest, b.size] as const)));
    const expectedRequired = [...r2Blobs.keys()].filter((d) => r1Blobs.has(d)).sort();
    assert.ok(expectedRequired.length >= 5, 'the fixture shares blobs between the releases');
    assert.deepEqual(requiredDigests(deltaIndex), expectedRequired);
    const carried = new Set(carriedBlobs(deltaIndex).map((p) => `sha256:${p.split('/').pop()}`));
    for (const d of r2Blobs.keys()) assert.equal(carried.has(d), !r1Blobs.has(d), `${d} carried exactly when release 1 lacks it`);
    // Manifests and indexes are always carried, the unchanged images' too.
    for (const img of r2Images) assert.ok(carried.has(img.digest), `${img.repository}:${img.tag} manifest carried`);
    assert.deepEqual(deltaIndex.since, { name: 'harness', version: '1.0.0' });
    assert.equal(summary.delta.blobsLeftOut, expectedRequired.length);
    assert.equal(summary.delta.bytesLeftOut, expectedRequired.reduce((a, d) => a + r2Blobs.get(d)!, 0));
    // The mount hint of an old bundle is the source repository of an image that held the blob.
    const ngConfig = r1Images[0]!.blobs[0]!.digest;
    assert.equal(deltaIndex.requires!.find((r) => r.digest === ngConfig)?.repository, 'docker.io/harness/ng-manager');
    // Pack did not download the left-out layers (configs, a few KB, are read for the index's platform list).
    const layerGets = (await source.requests(/^GET \/v2\/.*\/blobs\/sha256:/)).slice(getsBefore);
    const leftOutLayers = deltaIndex.requires!.filter((r) => !r1Images.some((i) => i.blobs.some((b) => b.digest === r.digest && b.mediaType.includes('config'))));
    assert.ok(leftOutLayers.length > 0);
    for (const r of leftOutLayers) assert.ok(!layerGets.some((g) => g.includes(r.digest)), `${r.digest} was downloaded`);
    assert.ok(layerGets.length > 0, 'the carried layers were downloaded');
  });

  test('--since an inventory of the enclave and --since the old airlock.json give the same delta', async () => {
    // The real `airlock inventory` of the release-1 enclave: it holds exactly what release 1 put there.
    const invPath = join(work, 'inventory.json');
    const taken = await airlock(['inventory', '--registry', enclave.host, '--plain-http', '-o', invPath]);
    assert.equal(taken.code, 0, taken.stderr);
    const real = JSON.parse(readFileSync(invPath, 'utf8')) as Inventory;
    assert.deepEqual(Object.keys(real.blobs).sort(), Object.keys(inventoryOf(r1Images, enclave.host).blobs).sort());
    const byInventory = join(work, 'release2-inv.tar');
    const packed = await pack(join(work, 'release2.yaml'), byInventory, ['--since', invPath]);
    assert.equal(packed.code, 0, packed.stderr);
    assert.match(packed.stdout, /left out\s+\d+ blobs/);
    const inv = indexOf(byInventory);
    assert.deepEqual(carriedBlobs(inv), carriedBlobs(deltaIndex));
    assert.deepEqual(requiredDigests(inv), requiredDigests(deltaIndex));
    // An inventory's hint is the enclave repository path.
    assert.equal(inv.requires!.find((r) => r.digest === r1Images[0]!.blobs[0]!.digest)?.repository, 'harness/ng-manager');

    const dir = mkdtempSync(join(work, 'idx-'));
    execFileSync('tar', ['-xf', r1(), '-C', dir, 'airlock.json']);
    const byIndex = join(work, 'release2-idx.tar');
    const packed2 = await pack(join(work, 'release2.yaml'), byIndex, ['--since', join(dir, 'airlock.json')]);
    assert.equal(packed2.code, 0, packed2.stderr);
    const idx = indexOf(byIndex);
    assert.deepEqual(carriedBlobs(idx), carriedBlobs(deltaIndex));
    assert.deepEqual(requiredDigests(idx), requiredDigests(deltaIndex));
  });

  test('a malformed inventory is exit 2 naming the field', async () => {
    const bad = join(work, 'bad-inventory.json');
    const inv = inventoryOf(r1Images, enclave.host);
    inv.blobs[Object.keys(inv.blobs)[0]!] = [12, 99];
    writeFileSync(bad, JSON.stringify(inv));
    const packed = await pack(join(work, 'release2.yaml'), join(work, 'never.tar'), ['--since', bad]);
    assert.equal(packed.code, 2, packed.stderr);
    assert.match(packed.stderr, /blobs\["sha256:[a-f0-9]{64}"\]\[1\]: repository index must be an integer from 0 to \d+, not 99/);
  });

  test('verify checks what the delta carries and says what it relies on; inspect shows it', async () => {
    const verified = await airlock(['verify', delta, '--key', pub()]);
    assert.equal(verified.code, 0, verified.stderr);
    assert.match(verified.stdout, /a delta bundle since harness 1\.0\.0: it relies on \d+ blobs/);
    const json = await airlock(['verify', delta, '--key', pub(), '--json']);
    const v = JSON.parse(json.stdout.trim().split('\n').pop()!) as { delta: { blobs: number; bytes: number; since: unknown } };
    assert.equal(v.delta.blobs, deltaIndex.requires!.length);
    const inspected = await airlock(['inspect', delta]);
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.match(inspected.stdout, /a delta bundle since harness 1\.0\.0/);
    const inspectedJson = JSON.parse((await airlock(['inspect', delta, '--json'])).stdout) as BundleIndex & { delta: unknown };
    assert.deepEqual(inspectedJson.requires, deltaIndex.requires);
    assert.ok(inspectedJson.delta);
  });

  test('into an empty registry: exit 5 listing what is missing, and the registry stays empty (dry run too)', async () => {
    const empty = await startRegistry();
    try {
      const dry = await load(delta, empty, ['--dry-run']);
      assert.equal(dry.code, 5, dry.stderr);
      const loaded = await load(delta, empty);
      assert.equal(loaded.code, 5, loaded.stderr);
      const n = deltaIndex.requires!.length;
      assert.match(loaded.stderr, new RegExp(`relies on ${n} blobs? .* that ${empty.host.replace(/\./g, '\\.')} does not hold in any repository; nothing was written`));
      assert.match(loaded.stderr, /sha256:[a-f0-9]{64} \(.*\) for harness\//);
      assert.deepEqual(await catalogOf(empty), []);
      assert.deepEqual(await empty.requests(/^(PUT|POST|PATCH|DELETE) /), []);
    } finally {
      await empty.stop();
    }
  });

  test('into the release-1 enclave: every image with its digest, no release-1 blob uploaded again', async () => {
    const before = await uploadedDigests(enclave);
    const dry = await load(delta, enclave, ['--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /delta since harness 1\.0\.0: relies on/);
    const loaded = await load(delta, enclave);
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.match(loaded.stdout, /delta since harness 1\.0\.0/);
    await assertRelease2In(enclave);
    const after = await uploadedDigests(enclave);
    const newUploads = [...after].filter((d) => !before.has(d));
    const r1Blobs = new Set(r1Images.flatMap((i) => i.blobs.map((b) => b.digest)));
    assert.ok(newUploads.length > 0, 'the new blobs were uploaded');
    assert.deepEqual(newUploads.filter((d) => r1Blobs.has(d)), [], 'no release-1 blob uploaded again');
  });

  test('a required blob that lives only in another repository of the enclave is mounted, not uploaded', async () => {
    const other = await startRegistry();
    try {
      // Release 1's content, but under other repository names only: the hint and the target repositories are empty.
      const moved = await generateImages({ seed: SEED, baseLayerSize: BASE, images: release1 });
      for (const m of moved) m.repository = `mirror/${m.repository}`;
      await pushImages(other.url, moved);
      const before = await uploadedDigests(other);
      const loaded = await load(delta, other);
      assert.equal(loaded.code, 0, loaded.stderr);
      await assertRelease2In(other);
      const uploaded = [...(await uploadedDigests(other))].filter((d) => !before.has(d));
      const required = new Set(requiredDigests(deltaIndex));
      assert.deepEqual(uploaded.filter((d) => required.has(d)), [], 'no required blob uploaded');
      const mounts = await other.requests(/^POST \/v2\/.*\/blobs\/uploads\/\?.*mount=/);
      const mounted = new Set(mounts.filter((r) => /from=mirror%2F|from=mirror\//.test(r)).map((r) => decodeURIComponent(/mount=([^&\s]+)/.exec(r)![1]!)));
      for (const d of required) assert.ok(mounted.has(d), `${d} mounted from mirror/...`);
    } finally {
      await other.stop();
    }
  });
  test('a registry that refuses mounts: a required blob held by another repository is copied inside the registry', async () => {
    const other = await startRegistry();
    const q = await startQuirkProxy({ host: '127.0.0.1', port: other.port });
    try {
      const moved = await generateImages({ seed: SEED, baseLayerSize: BASE, images: release1 });
      for (const m of moved) m.repository = `mirror/${m.repository}`;
      await pushImages(other.url, moved);
      q.add({ name: 'mount refused', method: 'POST', path: /\/blobs\/uploads\/$/, query: /mount=/, answer: () => ({ status: 403, body: '{"errors":[{"code":"DENIED"}]}' }) });
      const loaded = await airlock(['load', delta, '--key', pub(), '--registry', q.host, '--plain-http']);
      assert.equal(loaded.code, 0, loaded.stderr);
      assert.ok(q.log.some((e) => e.rule === 'mount refused'), 'a mount was tried');
      await assertRelease2In(other);
    } finally {
      await q.stop();
      await other.stop();
    }
  });
});
