import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError, VerificationError } from '../../shared/cli/errors.ts';
import { deltaSummary } from '../../shared/bundle/delta.ts';
import { parseBundleIndex, type BundleIndex } from '../../shared/bundle/format.ts';
import type { Inventory } from '../../shared/inventory/format.ts';
import { fromInventory, readSinceBase, splitBlobs, type SinceBase } from '../../packer/since.ts';
import type { Descriptor } from '../../shared/oci/descriptor.ts';

/** The delta fields of the signed index, the inventory reader, and how pack --since splits a release's blobs. */
const d = (c: string) => `sha256:${c.repeat(64)}`;
const layer = (c: string, size: number): Descriptor => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d(c), size });

function index(extra: Partial<BundleIndex>): Buffer {
  const base: BundleIndex = {
    airlockVersion: 1,
    name: 'harness',
    version: '2.0.0',
    created: '2026-12-01T00:00:00.000Z',
    platforms: [],
    images: [],
    charts: [],
    entries: [{ path: `oci/blobs/sha256/${'a'.repeat(64)}`, size: 10, sha256: 'a'.repeat(64) }],
  };
  return Buffer.from(JSON.stringify({ ...base, ...extra }));
}

describe('requires and since in the index', () => {
  test('a delta index parses; its summary counts the blobs and bytes it relies on', () => {
    const parsed = parseBundleIndex(index({ requires: [{ digest: d('b'), size: 7, repository: 'docker.io/harness/ng-manager' }, { digest: d('c'), size: 5, repository: 'harness/x' }], since: { name: 'harness', version: '1.0.0' } }));
    assert.deepEqual(deltaSummary(parsed), { blobs: 2, bytes: 12, since: { name: 'harness', version: '1.0.0' } });
    assert.equal(deltaSummary(parseBundleIndex(index({}))), undefined);
  });

  const refused: [string, Partial<BundleIndex>, RegExp][] = [
    ['a bad digest', { requires: [{ digest: 'sha256:xyz', size: 1, repository: 'r' }] }, /requires\[0\] needs a sha256 digest/],
    ['a negative size', { requires: [{ digest: d('b'), size: -1, repository: 'r' }] }, /requires\[0\] .* has an invalid size/],
    ['no repository', { requires: [{ digest: d('b'), size: 1, repository: '' }] }, /requires\[0\] .* needs a repository/],
    ['a blob listed twice', { requires: [{ digest: d('b'), size: 1, repository: 'r' }, { digest: d('b'), size: 1, repository: 'r' }] }, /requires\[1\] .* is listed twice/],
    ['a blob both carried and required', { requires: [{ digest: d('a'), size: 10, repository: 'r' }] }, /requires\[0\] .* is also carried in the bundle/],
    ['requires not a list', { requires: {} as never }, /requires must be a list/],
    ['since without a version', { since: { name: 'harness' } as never }, /since needs a string version/],
  ];
  for (const [what, extra, message] of refused) {
    test(`refuses ${what} (exit 3)`, () => {
      assert.throws(() => parseBundleIndex(index(extra)), (err: unknown) => err instanceof VerificationError && message.test(err.message));
    });
  }
});

function inventory(): Inventory {
  return {
    airlockInventory: 1,
    registry: 'registry.enclave:5000/apps',
    created: '2026-12-02T10:00:00.000Z',
    source: 'catalog',
    repositories: ['apps/harness/ng-manager', 'apps/library/nginx'],
    tags: { 'apps/harness/ng-manager': { '1.0': d('e') } },
    manifests: { [d('e')]: 0 },
    blobs: { [d('b')]: [100, 0], [d('c')]: [50, 1] },
  };
}

describe('pack --since: the base and the split', () => {
  test('an inventory gives each blob its enclave repository', () => {
    const base = fromInventory(inventory());
    assert.deepEqual(base.held.get(d('c')), { size: 50, repository: 'apps/library/nginx' });
    assert.equal(base.since, undefined);
  });

  test('blobs the base holds with the same size are required; others, or a size that differs, are carried', () => {
    const base = fromInventory(inventory());
    const blobs = [layer('b', 100), layer('c', 51), layer('f', 9)];
    const split = splitBlobs(blobs, [{ repository: 'docker.io/harness/ng-manager', blobs }], base);
    assert.deepEqual(split.requires, [{ digest: d('b'), size: 100, repository: 'apps/harness/ng-manager' }]);
    assert.deepEqual(split.carried.map((b) => b.digest), [d('c'), d('f')]);
    assert.equal(split.leftOutBytes, 100);
  });

  test('from an index alone (holders unknown): the using image\'s repository when the base had it, else one of the base\'s', () => {
    const base: SinceBase = {
      kind: 'index',
      held: new Map([
        [d('b'), { size: 1 }],
        [d('c'), { size: 2 }],
      ]),
      baseRepositories: new Set(['docker.io/harness/ng-manager', 'docker.io/harness/gateway']),
      since: { name: 'harness', version: '1.0.0' },
    };
    const split = splitBlobs([layer('b', 1), layer('c', 2)], [
      { repository: 'docker.io/harness/ng-manager', blobs: [layer('b', 1)] },
      { repository: 'docker.io/harness/new', blobs: [layer('c', 2)] },
    ], base);
    assert.deepEqual(split.requires.map((r) => r.repository), ['docker.io/harness/ng-manager', 'docker.io/harness/gateway']);
  });

  test('readSinceBase tells the kinds apart by content and refuses other files (exit 2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-since-'));
    try {
      writeFileSync(join(dir, 'inv.json'), JSON.stringify(inventory()));
      assert.equal((await readSinceBase(join(dir, 'inv.json'))).kind, 'inventory');
      writeFileSync(join(dir, 'airlock.json'), index({ requires: [{ digest: d('b'), size: 7, repository: 'harness/x' }] }));
      const fromIndex = await readSinceBase(join(dir, 'airlock.json'));
      assert.equal(fromIndex.kind, 'index');
      assert.deepEqual(fromIndex.since, { name: 'harness', version: '2.0.0' });
      // What it carried and what it required itself.
      assert.deepEqual([...fromIndex.held.keys()].sort(), [d('a'), d('b')]);
      writeFileSync(join(dir, 'other.json'), '{"hello":1}');
      await assert.rejects(readSinceBase(join(dir, 'other.json')), (err: unknown) => err instanceof UsageError && /neither an inventory/.test(err.message));
      writeFileSync(join(dir, 'junk.tar'), Buffer.alloc(1024, 1));
      await assert.rejects(readSinceBase(join(dir, 'junk.tar')), (err: unknown) => err instanceof UsageError && /not a usable airlock bundle/.test(err.message));
      await assert.rejects(readSinceBase(join(dir, 'absent.tar')), UsageError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
