import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { releaseChanges, type ReleaseState } from '../../loader/gitops/releaseChanges.ts';
import { commitMessage, PUSH_OPTION_TEXT_BYTES, pushOptionText, reviewText, VENDOR_NAMES_LISTED } from '../../loader/gitops/reviewText.ts';
import { generateKeyPair, keyFingerprint } from '../../shared/sign/keys.ts';
import { run } from '../services/exec.ts';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const d = (c: string) => `sha256:${c.repeat(64)}`;

const v1: ReleaseState = {
  name: 'harness',
  version: '1.0.0',
  created: '2026-01-01T00:00:00Z',
  images: [
    { ref: 'docker.io/harness/ng-manager:1.0', digest: d('a') },
    { ref: 'docker.io/harness/gone:1.0', digest: d('b') },
    { ref: 'docker.io/library/redis:7', digest: d('c') },
    { ref: 'docker.io/harness/twice:1', digest: d('1') },
    { ref: 'docker.io/harness/twice:2', digest: d('2') },
  ],
  charts: [{ name: 'harness', releaseName: 'harness', version: '0.1.0', digest: d('d') }],
  vendorFiles: new Map([
    ['deploy/a.yaml', '1'],
    ['deploy/b.yaml', '2'],
    ['deploy/c.yaml', '3'],
  ]),
};
const v2: ReleaseState = {
  name: 'harness',
  version: '1.1.0',
  created: '2026-02-01T00:00:00Z',
  signer: `sha256:${'f'.repeat(64)}`,
  images: [
    { ref: 'docker.io/harness/ng-manager:1.1', digest: d('e') },
    { ref: 'docker.io/library/redis:7', digest: d('c') },
    { ref: 'docker.io/harness/new@' + d('9'), digest: d('9') },
    { ref: 'docker.io/harness/twice:2', digest: d('2') },
    { ref: 'docker.io/harness/twice:3', digest: d('3') },
  ],
  charts: [
    { name: 'harness', releaseName: 'harness', version: '0.2.0', digest: d('7') },
    { name: 'redis', releaseName: 'cache', version: '18.0.0', digest: d('8') },
  ],
  vendorFiles: new Map([
    ['deploy/a.yaml', '1'],
    ['deploy/b.yaml', '2b'],
    ['deploy/d.yaml', '4'],
  ]),
};

test('release changes: images by name (tag and digest), charts by release, vendor files by blob', () => {
  const c = releaseChanges(v1, v2);
  assert.deepEqual(c.from, { name: 'harness', version: '1.0.0' });
  assert.deepEqual(c.images.changed, [{ name: 'docker.io/harness/ng-manager', old: { tag: '1.0', digest: d('a') }, new: { tag: '1.1', digest: d('e') } }]);
  assert.deepEqual(c.images.added, [
    { name: 'docker.io/harness/new', new: { digest: d('9') } },
    { name: 'docker.io/harness/twice', new: { tag: '3', digest: d('3') } },
  ]);
  assert.deepEqual(c.images.removed, [
    { name: 'docker.io/harness/gone', old: { tag: '1.0', digest: d('b') } },
    { name: 'docker.io/harness/twice', old: { tag: '1', digest: d('1') } },
  ]);
  assert.deepEqual(c.charts.changed, [{ name: 'harness', releaseName: 'harness', old: { version: '0.1.0', digest: d('d') }, new: { version: '0.2.0', digest: d('7') } }]);
  assert.deepEqual(c.charts.added, [{ name: 'redis', releaseName: 'cache', new: { version: '18.0.0', digest: d('8') } }]);
  assert.deepEqual(c.vendorFiles, { added: ['deploy/d.yaml'], changed: ['deploy/b.yaml'], removed: ['deploy/c.yaml'] });

  const same = releaseChanges(v2, v2);
  assert.deepEqual([same.images, same.charts, same.vendorFiles], [
    { added: [], removed: [], changed: [] },
    { added: [], removed: [], changed: [] },
    { added: [], changed: [], removed: [] },
  ]);
  const fresh = releaseChanges(undefined, v1);
  assert.equal(fresh.from, undefined);
  assert.equal(fresh.images.added.length, 5);
});

test('review text: title, old and new tag@digest (12 hex), charts, vendor files, creation time and signer; the commit message is the same text', () => {
  const text = reviewText({ name: 'harness', version: '1.1.0', from: 'dev', to: 'prod' }, releaseChanges(v1, v2), 'harness');
  assert.equal(text.title, 'airlock: promote harness 1.1.0 to prod');
  const lines = text.description.split('\n');
  assert.ok(lines.includes(`- changed docker.io/harness/ng-manager: 1.0@sha256:${'a'.repeat(12)} -> 1.1@sha256:${'e'.repeat(12)}`), text.description);
  assert.ok(lines.includes(`- added docker.io/harness/new: @sha256:${'9'.repeat(12)}`), text.description);
  assert.ok(lines.includes(`- removed docker.io/harness/gone: 1.0@sha256:${'b'.repeat(12)}`), text.description);
  assert.ok(lines.includes('Images: 2 added, 2 removed, 1 changed.'));
  assert.ok(lines.includes(`- changed harness: 0.1.0@sha256:${'d'.repeat(12)} -> 0.2.0@sha256:${'7'.repeat(12)}`));
  assert.ok(lines.includes(`- added redis (release cache): 18.0.0@sha256:${'8'.repeat(12)}`));
  assert.ok(lines.includes('Vendor files under harness/base: 1 added, 1 changed, 1 removed.'));
  assert.ok(lines.includes('- added deploy/d.yaml') && lines.includes('- changed deploy/b.yaml') && lines.includes('- removed deploy/c.yaml'));
  assert.match(text.description, /has harness 1\.0\.0\./);
  assert.match(text.description, /Bundle created 2026-02-01T00:00:00Z\./);
  assert.match(text.description, new RegExp(`key sha256:${'f'.repeat(64)} \\(SHA-256 of the public key's DER\\)`));
  assert.doesNotMatch(text.description.replace(/key sha256:[0-9a-f]{64}/, ''), /sha256:[0-9a-f]{13}/, 'image and chart digests are cut to 12 hex');
  assert.equal(commitMessage(text), `${text.title}\n\n${text.description}\n`);

  const unsigned = reviewText({ name: 'harness', version: '1.0.0', from: 'dev', to: 'prod' }, releaseChanges(undefined, v1), 'harness');
  assert.match(unsigned.description, /nothing yet \(a new environment\)/);
  assert.match(unsigned.description, /Signer key: not recorded/);
});

test('review text: vendor file names listed up to a limit, the rest counted', () => {
  const many = new Map(Array.from({ length: VENDOR_NAMES_LISTED + 5 }, (_, i) => [`f${String(i).padStart(3, '0')}.yaml`, String(i)]));
  const text = reviewText({ name: 'h', version: '2', from: 'dev', to: 'prod' }, releaseChanges({ ...v1, vendorFiles: new Map() }, { ...v2, vendorFiles: many }), 'h');
  assert.equal(text.description.split('\n').filter((l) => /^- added f\d+\.yaml$/.test(l)).length, VENDOR_NAMES_LISTED);
  assert.ok(text.description.includes('- ... and 5 more'));
});

test('push option text: no line breaks; GitLab gets literal \\n; long text is cut under the pkt-line limit', () => {
  const desc = 'a\nb\r\n\nc';
  assert.equal(pushOptionText(desc, 'literal'), 'a\\nb\\n\\nc');
  assert.equal(pushOptionText(desc, 'one-line'), 'a | b | c');
  const long = Array.from({ length: 5000 }, (_, i) => `- changed file-${i}.yaml`).join('\n');
  for (const style of ['literal', 'one-line'] as const) {
    const t = pushOptionText(long, style);
    assert.ok(Buffer.byteLength(t) <= PUSH_OPTION_TEXT_BYTES);
    assert.doesNotMatch(t, /[\r\n]/);
    assert.match(t, /\(cut: the full text is the commit message\)$/);
  }
});

test('key fingerprint: sha256 of the public key DER, as openssl computes it', async () => {
  const pair = generateKeyPair('pw');
  const dir = mkdtempSync(join(tmpdir(), 'airlock-fp-'));
  try {
    writeFileSync(join(dir, 'k.pub'), pair.publicKeyPem);
    writeFileSync(join(dir, 'fp.sh'), 'openssl pkey -pubin -in "$1" -outform DER | openssl dgst -sha256 -r\n');
    const out = await run('sh', [join(dir, 'fp.sh'), join(dir, 'k.pub')]);
    assert.equal(keyFingerprint(createPublicKey(pair.publicKeyPem)), `sha256:${out.stdout.split(' ')[0]}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
