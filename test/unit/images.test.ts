import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mergeImages, readImageList } from '../../packer/images.ts';

const harnessList = fileURLToPath(new URL('../../../shared/fixtures/harness/images.txt', import.meta.url));

test('the Harness image list reads as 218 references that merge into 201 images', async () => {
  const lines = await readImageList(harnessList);
  assert.equal(lines.length, 218);
  const merged = mergeImages(lines);
  assert.equal(merged.length, 201);
  const refid = merged.find((m) => m.canonical === 'docker.io/harnesssecure/refid-cache:latest');
  assert.ok(refid && refid.from.length === 2, 'listed with and without docker.io: one image, two sources');
  assert.match(refid.from[0]!, /images\.txt:\d+$/);
});

test('explicit, listed and discovered references are merged with their sources', () => {
  const merged = mergeImages([
    { text: 'nginx', where: 'airlock.yaml:5' },
    { text: 'docker.io/library/nginx:latest', where: 'deploy/a.yaml: Pod/x containers c' },
    { text: 'quay.io/a/b:1', where: 'images.txt:2' },
  ]);
  assert.deepEqual(
    merged.map((m) => [m.canonical, m.from]),
    [
      ['docker.io/library/nginx:latest', ['airlock.yaml:5', 'deploy/a.yaml: Pod/x containers c']],
      ['quay.io/a/b:1', ['images.txt:2']],
    ],
  );
});

test('image lists: comments, blank lines and CRLF are skipped; line numbers kept', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-list-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'l.txt'), '## section\r\nnginx:1 # pinned\r\n\r\n  quay.io/a/b:2  \n');
  assert.deepEqual(await readImageList(join(dir, 'l.txt')), [
    { text: 'nginx:1', where: `${join(dir, 'l.txt')}:2` },
    { text: 'quay.io/a/b:2', where: `${join(dir, 'l.txt')}:4` },
  ]);
});

test('a bad reference names where it came from (exit 2); a missing list is exit 2', async () => {
  assert.throws(() => mergeImages([{ text: 'Bad/Ref', where: 'images.txt:7' }]), (err: Error & { exitCode?: number }) => {
    return err.exitCode === 2 && /^images\.txt:7: invalid image reference/.test(err.message);
  });
  await assert.rejects(readImageList('/nonexistent/images.txt'), (err: Error & { exitCode?: number }) => {
    return err.exitCode === 2 && /imageLists: cannot read \/nonexistent\/images.txt/.test(err.message);
  });
});
