import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RegistryClient } from '../../shared/registry/client.ts';
import { HttpTransport } from '../../shared/registry/transport.ts';
import { childrenOf, isManifestOrIndex, parseManifest } from '../../shared/oci/mediatype.ts';
import { airlock } from '../helpers/cli.ts';
import { walk } from '../helpers/hostile.ts';
import { packedWorld, type PackedWorld } from '../helpers/packed-world.ts';
import type { SyntheticImage } from '../services/fixtures.ts';
import { startQuirkProxy } from '../services/quirkProxy.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';

/**
 * Long loads and garbage collection. Quay expires uploads nothing references
 * after about an hour (its blob-upload expiry); Harbor's garbage collection,
 * scheduled or started by an administrator, may run during a long load and,
 * with "delete untagged artifacts", removes manifests no tag points to and
 * then their blobs (goharbor docs, "Garbage Collection"). So load pushes each
 * image's manifests by digest as soon as its blobs are in (referenced, so no
 * expiry takes them), and tags last. A tag is a PUT of the manifest, which
 * the registry refuses when blobs it references are gone
 * (MANIFEST_BLOB_UNKNOWN): load then pushes again what vanished and tags again.
 */
describe('long loads and garbage collection', () => {
  let world: PackedWorld;
  let bundle: string;
  let images: SyntheticImage[];

  before(async () => {
    world = await packedWorld({
      name: 'gc',
      password: 'gc test',
      images: {
        seed: 77,
        images: [
          { repository: 'harness/ng-manager', tag: '1.0', layers: 3, layerSize: 1_000_000 },
          { repository: 'harness/gateway', tag: '2.0', layers: 2, layerSize: 5_000 },
          { repository: 'library/pause', tag: '3.9', layers: 1, layerSize: 5_000, platforms: ['linux/amd64', 'linux/arm64'] },
        ],
      },
      manifests: { 'notes.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  text: "the last entry of the bundle"\n' },
      spec: 'name: harness\nversion: 1.0.0\nimages:\n  - harness/ng-manager:1.0\n  - harness/gateway:2.0\n  - pause:3.9\nmanifests:\n  - path: ./deploy\n',
      bundleName: 'harness.tar',
    });
    ({ bundle, images } = world);
  });

  after(async () => {
    await world?.stop();
  });

  /** The tag points at `digest`, and every manifest and blob under it is in the repository. */
  async function assertComplete(target: RegistryService, repository: string, tag: string, digest: string): Promise<void> {
    const transport = new HttpTransport({ proxy: {} });
    const client = new RegistryClient(target.host, transport, { plainHttp: true });
    try {
      const top = await client.getManifest(repository, tag);
      assert.equal(top?.descriptor.digest, digest, `${repository}:${tag}`);
      const walkDown = async (bytes: Buffer, mediaType: string): Promise<void> => {
        for (const child of childrenOf(parseManifest(bytes, mediaType, repository))) {
          if (isManifestOrIndex(child.mediaType)) {
            const m = await client.getManifest(repository, child.digest);
            assert.ok(m, `${repository}@${child.digest}`);
            await walkDown(m.bytes, child.mediaType);
          } else assert.ok(await client.blobExists(repository, child), `${repository}: blob ${child.digest}`);
        }
      };
      await walkDown(top!.bytes, top!.descriptor.mediaType);
    } finally {
      await transport.close();
    }
  }

  test('Harbor GC removes an untagged manifest and its blobs mid-load: it is pushed again before any tag; every tag ends on a complete image', async () => {
    const target = await startRegistry();
    const front = await startQuirkProxy({ host: '127.0.0.1', port: target.port });
    try {
      const gateway = images[1]!;
      let pushed = false;
      front.add({ name: 'the manifest goes out by digest', method: 'PUT', path: new RegExp(`/v2/harness/gateway/manifests/${gateway.digest}$`), times: 1, rewrite: () => ((pushed = true), {}) });
      front.add({
        name: 'Harbor GC: an untagged artifact and its blobs deleted before its tag',
        method: 'PUT',
        path: new RegExp(`/v2/harness/gateway/manifests/${gateway.tag}$`),
        when: () => pushed,
        times: 1,
        before: async () => {
          const del = (path: string) => fetch(`${target.url}/v2/harness/gateway/${path}`, { method: 'DELETE' }).then((r) => assert.equal(r.status, 202, `DELETE ${path}`));
          await del(`manifests/${gateway.digest}`);
          for (const b of gateway.blobs) await del(`blobs/${b.digest}`);
        },
      });
      // A slow link for the large image: its layers commit late, whatever the machine's speed.
      front.add({ name: 'slow commits of the large layers', method: 'PUT', path: /\/v2\/harness\/ng-manager\/blobs\/uploads\//, before: () => new Promise((r) => setTimeout(r, 1500)) });
      const res = await airlock(['load', bundle, '--key', world.pub, '--registry', front.host, '--plain-http', '--jobs', '8']);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stderr, new RegExp(`1 manifest vanished from the registry during the load .* went again: ${front.host}/harness/gateway@${gateway.digest}`));
      for (const img of images) await assertComplete(target, img.repository, img.tag, img.digest);

      const puts = front.log.map((e, i) => ({ ...e, i })).filter((e) => e.method === 'PUT');
      const tagPuts = puts.filter((e) => /\/manifests\/(?!sha256:)/.test(e.url));
      const digestPuts = puts.filter((e) => /\/manifests\/sha256:/.test(e.url));
      const blobCommits = puts.filter((e) => /\/blobs\/uploads\//.test(e.url));
      // The registry refused gateway's first tag (its blobs were gone): no tag ever pointed at an incomplete image.
      const tagsSet = tagPuts.filter((e) => e.status === 201);
      assert.deepEqual(tagPuts.filter((e) => e.status !== 201).map((e) => [e.url, e.status]), [[`/v2/harness/gateway/manifests/${gateway.tag}`, 400]]);
      assert.equal(tagsSet.length, 3);
      const refusedTag = tagPuts.find((e) => e.status !== 201)!;
      assert.ok(Math.min(...tagPuts.map((e) => e.i)) > Math.max(...digestPuts.filter((e) => e.i < refusedTag.i).map((e) => e.i), ...blobCommits.filter((e) => e.i < refusedTag.i).map((e) => e.i)), 'tags last');
      const gatewayTag = tagsSet.find((e) => e.url.includes('/harness/gateway/'))!;
      assert.ok(gatewayTag.i > Math.max(...puts.filter((e) => e.url.includes('/harness/gateway/') && e !== gatewayTag).map((e) => e.i)), 'the gateway tag after its content went again');
      assert.equal(digestPuts.filter((e) => e.url.endsWith(gateway.digest)).length, 2, 'pushed, then pushed again');
      // Early: the small image's manifest went out while the large one's layers were still uploading.
      const firstGateway = digestPuts.find((e) => e.url.endsWith(gateway.digest))!;
      const lastLargeLayer = Math.max(...blobCommits.filter((e) => e.url.includes('/harness/ng-manager/')).map((e) => e.i));
      assert.ok(firstGateway.i < lastLargeLayer, 'a manifest goes out as soon as its blobs are in, not after every image');
    } finally {
      await front.stop();
      await target.stop();
    }
  });

  test('GC removes a platform manifest of an index before its tag: the registry refuses the index, the child goes again, then the tag', async () => {
    const target = await startRegistry();
    const front = await startQuirkProxy({ host: '127.0.0.1', port: target.port });
    try {
      const pause = images[2]!;
      const child = pause.children![0]!;
      front.add({
        name: 'GC: one platform manifest of the untagged index deleted before the tag',
        method: 'PUT',
        path: new RegExp(`/v2/library/pause/manifests/${pause.tag}$`),
        times: 1,
        before: async () => {
          const res = await fetch(`${target.url}/v2/library/pause/manifests/${child.digest}`, { method: 'DELETE' });
          assert.equal(res.status, 202);
        },
      });
      const res = await airlock(['load', bundle, '--key', world.pub, '--registry', front.host, '--plain-http']);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stderr, new RegExp(`1 manifest vanished from the registry during the load .* went again: ${front.host}/library/pause@${child.digest}`));
      const pauseTags = front.log.filter((e) => e.method === 'PUT' && e.url === `/v2/library/pause/manifests/${pause.tag}`);
      assert.deepEqual(pauseTags.map((e) => e.status), [400, 201], 'refused while the child was gone, taken once it was back');
      for (const img of images) await assertComplete(target, img.repository, img.tag, img.digest);
    } finally {
      await front.stop();
      await target.stop();
    }
  });

  test('a corrupted later entry fails the load with no tag set (manifests by digest only)', async () => {
    const target = await startRegistry();
    try {
      const tar = readFileSync(bundle);
      const entry = walk(tar).entries.find((e) => e.path === 'manifests/deploy/notes.yaml')!;
      tar[entry.dataAt + 10] = tar[entry.dataAt + 10]! ^ 0x20;
      const bad = join(world.work, 'corrupted.tar');
      writeFileSync(bad, tar);
      const res = await airlock(['load', bad, '--key', world.pub, '--registry', target.host, '--plain-http']);
      assert.equal(res.code, 3, res.stderr);
      assert.match(res.stderr, /manifests\/deploy\/notes\.yaml/);
      assert.deepEqual(await target.requests(/^PUT \/v2\/.*\/manifests\/(?!sha256:)/), [], 'no tag');
    } finally {
      await target.stop();
    }
  });
});
