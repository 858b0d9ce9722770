import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchManifests } from '../../packer/sources/manifests.ts';
import { HttpTransport } from '../../shared/registry/transport.ts';

function tree(t: { after: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-msrc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'deploy', 'base', '.git'), { recursive: true });
  writeFileSync(join(dir, 'deploy', 'base', 'app.yaml'), 'kind: Deployment\n');
  writeFileSync(join(dir, 'deploy', 'base', '.git', 'HEAD'), 'ref: x\n');
  writeFileSync(join(dir, 'deploy', 'kustomization.yaml'), 'resources: [base/app.yaml]\n');
  writeFileSync(join(dir, 'crds.yaml'), 'kind: CustomResourceDefinition\n');
  return dir;
}

const options = (dir: string) => ({ workDir: dir, transport: new HttpTransport() });

test('path sources: a directory lands under manifests/<its name>/, a file under manifests/; sizes and sha256 are right', async (t) => {
  const dir = tree(t);
  const files = await fetchManifests([{ kind: 'path', path: join(dir, 'deploy') }, { kind: 'path', path: join(dir, 'crds.yaml') }], options(dir));
  assert.deepEqual(
    files.map((f) => f.path),
    ['manifests/crds.yaml', 'manifests/deploy/base/app.yaml', 'manifests/deploy/kustomization.yaml'],
  );
  const app = files[1]!;
  assert.equal(app.size, 'kind: Deployment\n'.length);
  assert.equal(app.sha256, createHash('sha256').update('kind: Deployment\n').digest('hex'));
  assert.equal(app.file, join(dir, 'deploy', 'base', 'app.yaml'));
});

test('path sources: a symlink, a missing path and two sources with the same name are refused (exit 2)', async (t) => {
  const dir = tree(t);
  const exit2 = (re: RegExp) => (e: Error & { exitCode?: number }) => e.exitCode === 2 && re.test(e.message);
  mkdirSync(join(dir, 'other', 'deploy'), { recursive: true });
  writeFileSync(join(dir, 'other', 'deploy', 'kustomization.yaml'), 'resources: []\n');
  await assert.rejects(
    fetchManifests([{ kind: 'path', path: join(dir, 'deploy') }, { kind: 'path', path: join(dir, 'other', 'deploy') }], options(dir)),
    exit2(/both give manifests\/deploy\/kustomization\.yaml/),
  );
  await assert.rejects(fetchManifests([{ kind: 'path', path: join(dir, 'nope') }], options(dir)), exit2(/path .*nope cannot be read/));
  symlinkSync('/etc/passwd', join(dir, 'deploy', 'base', 'passwd.yaml'));
  await assert.rejects(fetchManifests([{ kind: 'path', path: join(dir, 'deploy') }], options(dir)), exit2(/passwd\.yaml is a symbolic link/));
  await assert.rejects(fetchManifests([{ kind: 'git', url: 'https://git.example/x.git' }], options(dir)), exit2(/git sources are not built yet \(issue #5\)/));
});
