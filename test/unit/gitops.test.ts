import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { imageName, renderBase, type BaseInput } from '../../loader/gitops/base.ts';
import { parseSshUrl } from '../../shared/git/ssh.ts';
import { checkHostKey, fingerprint } from '../../shared/transfer/ssh.ts';
import { authorOf } from '../../loader/gitops/commit.ts';
import type { BundleIndex } from '../../shared/bundle/format.ts';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const deploy = (image: string) => Buffer.from(`apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: x }\nspec:\n  template:\n    spec:\n      containers: [{ name: a, image: "${image}" }]\n`);

function input(manifests: { path: string; bytes: Buffer }[]): BaseInput {
  const index = {
    airlockVersion: 1,
    name: 'harness',
    version: '1.0.0',
    created: '2026-11-24T00:00:00Z',
    platforms: [],
    images: [
      { ref: 'docker.io/library/nginx:1.25', digest: D1, mediaType: 'application/vnd.oci.image.manifest.v1+json' },
      { ref: 'quay.io/org/tool:2', digest: D2, mediaType: 'application/vnd.oci.image.manifest.v1+json' },
    ],
    charts: [],
    entries: [],
  } as BundleIndex;
  return { index, indexBytes: Buffer.from('{}'), signature: 'c2ln', manifests, registry: { host: 'registry.enclave:5000', prefix: 'mirror' }, loadReport: { ok: true } };
}

test('the base: vendor files byte for byte, folders with a kustomization as one resource, images pinned by digest under the name as written', () => {
  const files = renderBase(
    input([
      { path: 'manifests/deploy/web.yaml', bytes: deploy('nginx:1.25') },
      { path: 'manifests/deploy/values.yaml', bytes: Buffer.from('image: nginx\n') },
      { path: 'manifests/platform/kustomization.yaml', bytes: Buffer.from('resources: [tool.yaml]\n') },
      { path: 'manifests/platform/tool.yaml', bytes: deploy('quay.io/org/tool:2') },
    ]),
  );
  assert.deepEqual(files.get('base/deploy/web.yaml'), deploy('nginx:1.25'));
  assert.deepEqual([...files.keys()].sort(), [
    'airlock/airlock.json',
    'airlock/airlock.json.sig',
    'airlock/load-report.json',
    'base/deploy/values.yaml',
    'base/deploy/web.yaml',
    'base/kustomization.yaml',
    'base/platform/kustomization.yaml',
    'base/platform/tool.yaml',
  ]);
  const k = files.get('base/kustomization.yaml')!.toString();
  assert.match(k, /resources:\n {2}- "deploy\/web\.yaml"\n {2}- "platform"\nimages:/);
  assert.match(k, new RegExp(`- name: "nginx"\\n {4}newName: "registry.enclave:5000/mirror/library/nginx"\\n {4}digest: ${D1}`));
  assert.match(k, new RegExp(`- name: "quay.io/org/tool"\\n {4}newName: "registry.enclave:5000/mirror/org/tool"\\n {4}digest: ${D2}`));
});

test('the base refuses images the bundle lacks and one name with two digests', () => {
  assert.throws(() => renderBase(input([{ path: 'manifests/a.yaml', bytes: deploy('redis:7') }])), (e: Error & { exitCode?: number }) => e.exitCode === 2 && /redis:7/.test(e.message));
  const twoTags = input([
    { path: 'manifests/a.yaml', bytes: deploy('nginx:1.25') },
    { path: 'manifests/b.yaml', bytes: deploy('nginx:1.26') },
  ]);
  twoTags.index.images.push({ ref: 'docker.io/library/nginx:1.26', digest: D2, mediaType: 'x' });
  assert.throws(() => renderBase(twoTags), /one name with different tags:\n {2}nginx: nginx:1\.25 and nginx:1\.26/);
});

test('image names as kustomize matches them', () => {
  assert.equal(imageName('nginx:1.25'), 'nginx');
  assert.equal(imageName('registry:5000/a/b:1@sha256:abc'), 'registry:5000/a/b');
  assert.equal(imageName('registry:5000/a/b'), 'registry:5000/a/b');
});

test('SSH URLs, authors', () => {
  assert.deepEqual(parseSshUrl('ssh://git@git.enclave:2222/srv/apps.git'), { user: 'git', host: 'git.enclave', port: 2222, path: '/srv/apps.git' });
  assert.deepEqual(parseSshUrl('git@git.enclave:org/apps.git'), { user: 'git', host: 'git.enclave', port: 22, path: 'org/apps.git' });
  assert.throws(() => parseSshUrl('ssh://git.enclave/x.git'), /name the SSH user/);
  assert.deepEqual(authorOf('Loader Bot <bot@x.test>'), { name: 'Loader Bot', email: 'bot@x.test' });
  assert.deepEqual(authorOf(undefined, { GIT_AUTHOR_NAME: 'A', GIT_AUTHOR_EMAIL: 'a@b' }), { name: 'A', email: 'a@b' });
  assert.throws(() => authorOf('no email'), (e: Error & { exitCode?: number }) => e.exitCode === 2);
});

test('known_hosts: plain, [host]:port, hashed, wildcard and revoked entries', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-kh-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const key = randomBytes(51);
  const other = randomBytes(51);
  const b64 = (k: Buffer) => k.toString('base64');
  const salt = randomBytes(20);
  const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[git.enclave]:2222').digest('base64')}`;
  const file = join(dir, 'known_hosts');
  writeFileSync(file, [`# comment`, `git.enclave ssh-ed25519 ${b64(key)}`, `${hashed} ssh-ed25519 ${b64(key)}`, `*.lab ssh-ed25519 ${b64(other)}`, `@revoked bad.host ssh-ed25519 ${b64(key)}`, ''].join('\n'));
  assert.equal(checkHostKey(file, 'git.enclave', 22, key), 'ok');
  assert.equal(checkHostKey(file, 'git.enclave', 22, other), 'changed');
  assert.equal(checkHostKey(file, 'git.enclave', 2222, key), 'ok');
  assert.equal(checkHostKey(file, 'x.lab', 22, key), 'changed');
  assert.equal(checkHostKey(file, 'x.lab', 22, other), 'ok');
  assert.equal(checkHostKey(file, 'bad.host', 22, key), 'changed');
  assert.equal(checkHostKey(file, 'elsewhere', 22, key), 'unknown');
  assert.equal(checkHostKey(join(dir, 'missing'), 'git.enclave', 22, key), 'unknown');
  assert.match(fingerprint(key), /^SHA256:[A-Za-z0-9+/]{43}$/);
});
