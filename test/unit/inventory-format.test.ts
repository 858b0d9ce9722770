import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../../shared/cli/errors.ts';
import { heldBlobs, parseInventory, readInventory, serializeInventory, writeInventory, type Inventory } from '../../shared/inventory/format.ts';

const d = (c: string) => `sha256:${c.repeat(64)}`;

function sample(): Inventory {
  return {
    airlockInventory: 1,
    registry: 'registry.enclave:5000/apps',
    created: '2026-12-02T10:00:00.000Z',
    source: 'catalog',
    repositories: ['apps/harness/ng-manager', 'apps/library/nginx'],
    tags: { 'apps/harness/ng-manager': { '1.0': d('a') }, 'apps/library/nginx': { '1.27': d('b'), latest: d('b') } },
    manifests: { [d('a')]: 0, [d('b')]: 1 },
    blobs: { [d('c')]: [1234, 0], [d('e')]: [0, 1] },
  };
}

function withField(path: (string | number)[], value: unknown): string {
  const body = JSON.parse(JSON.stringify(sample())) as Record<string, unknown>;
  let node: Record<string | number, unknown> = body;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return JSON.stringify(body);
}

test('a serialized inventory parses back to the same object, one line per entry', () => {
  const text = serializeInventory(sample());
  assert.deepEqual(parseInventory(text, 'inv.json'), sample());
  // one line per blob, manifest, repository and tag map
  assert.match(text, new RegExp(`^    "${d('c')}": \\[1234,0\\],?$`, 'm'));
  assert.match(text, /^ {4}"apps\/library\/nginx": \{"1\.27":"sha256:b+","latest":"sha256:b+"\},?$/m);
});

test('a 10k-blob inventory stays under 2 MB', () => {
  const inv = sample();
  for (let i = 0; i < 10_000; i++) inv.blobs[`sha256:${i.toString(16).padStart(64, '0')}`] = [123_456_789, 1];
  assert.ok(Buffer.byteLength(serializeInventory(inv)) < 2 * 1024 * 1024);
});

test('malformed inventories are refused with exit 2, naming the field', () => {
  const cases: [string, RegExp][] = [
    ['[]', /\(top level\): not a JSON object/],
    ['{"x":1', /not valid JSON/],
    [withField(['airlockInventory'], undefined), /airlockInventory: missing/],
    [withField(['airlockInventory'], 2), /format version 2 is not supported/],
    [withField(['extra'], 1), /extra: unknown field/],
    [withField(['registry'], ''), /registry: must be a non-empty string/],
    [withField(['created'], 'yesterday'), /created: must be an ISO 8601 time/],
    [withField(['source'], 'guess'), /source: must be "catalog" or "git"/],
    [withField(['repositories', 1], 'Apps/Upper'), /repositories\[1\]: not a repository path/],
    [withField(['repositories', 1], 'apps/harness/ng-manager'), /repositories\[1\]: "apps\/harness\/ng-manager" is listed twice/],
    [withField(['manifests', 'sha256:abc'], 0), /manifests\["sha256:abc"\]: not a digest/],
    [withField(['manifests', d('a')], 2), /manifests\["sha256:a+"\]: repository index must be an integer from 0 to 1, not 2/],
    [withField(['manifests', d('a')], 0.5), /repository index must be an integer/],
    [withField(['tags', 'apps/other'], {}), /tags\["apps\/other"\]: the repository is not in "repositories"/],
    [withField(['tags', 'apps/library/nginx', 'latest'], 'sha256:XYZ'), /tags\["apps\/library\/nginx"\]\["latest"\]: not a digest/],
    [withField(['tags', 'apps/library/nginx', 'latest'], d('f')), /\["latest"\]: sha256:f+ is not in "manifests"/],
    [withField(['tags', 'apps/library/nginx', '-bad'], d('b')), /\["-bad"\]: not a valid tag/],
    [withField(['blobs', d('c')], [-1, 0]), /blobs\["sha256:c+"\]\[0\]: size must be an integer >= 0, not -1/],
    [withField(['blobs', d('c')], [1.5, 0]), /\[0\]: size must be an integer >= 0, not 1.5/],
    [withField(['blobs', d('c')], ['12', 0]), /\[0\]: size must be an integer >= 0, not "12"/],
    [withField(['blobs', d('c')], [12, -1]), /blobs\["sha256:c+"\]\[1\]: repository index must be/],
    [withField(['blobs', d('c')], [12]), /blobs\["sha256:c+"\]: must be \[size, repository index\]/],
    [withField(['blobs', 'md5:00'], [12, 0]), /blobs\["md5:00"\]: not a digest/],
    [withField(['blobs'], []), /blobs: must be an object/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parseInventory(text, 'inv.json'),
      (err: unknown) => err instanceof UsageError && err.exitCode === 2 && message.test(err.message) && err.message.startsWith('inv.json: '),
      message.source,
    );
  }
});

test('readInventory: a missing file is exit 2 with a hint; writeInventory leaves no temp file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-inv-'));
  try {
    await assert.rejects(readInventory(join(dir, 'none.json')), (err: unknown) => err instanceof UsageError && /no such inventory file/.test(err.message) && /airlock inventory/.test(err.hint ?? ''));
    const path = join(dir, 'inventory.json');
    writeFileSync(path, 'old');
    await writeInventory(path, sample());
    assert.deepEqual(readdirSync(dir), ['inventory.json']);
    assert.deepEqual(await readInventory(path), sample());
    assert.equal(readFileSync(path, 'utf8'), serializeInventory(sample()));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('heldBlobs resolves each blob to its size and repository', () => {
  assert.deepEqual(heldBlobs(sample()).get(d('c')), { size: 1234, repository: 'apps/harness/ng-manager' });
  assert.deepEqual(heldBlobs(sample()).get(d('e')), { size: 0, repository: 'apps/library/nginx' });
});
