import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { formatReference, parseReference, referenceWithoutHost, withDefaultTag, apiHost } from '../../shared/oci/reference.ts';

const D = 'sha256:' + 'a'.repeat(64);

// [input, canonical] — behaviour of Docker's distribution/reference ParseNormalizedNamed.
const VALID: [string, string][] = [
  ['nginx', 'docker.io/library/nginx'],
  ['nginx:1.25', 'docker.io/library/nginx:1.25'],
  ['docker.io/nginx', 'docker.io/library/nginx'],
  ['docker.io/library/nginx:latest', 'docker.io/library/nginx:latest'],
  ['index.docker.io/library/nginx', 'docker.io/library/nginx'],
  ['index.docker.io/nginx', 'docker.io/library/nginx'],
  ['harness/ng-manager:1.0', 'docker.io/harness/ng-manager:1.0'],
  ['docker.io/harnesssecure/ng-manager:1.83.4', 'docker.io/harnesssecure/ng-manager:1.83.4'],
  ['localhost/foo', 'localhost/foo'],
  ['localhost:5000/foo/bar:tag', 'localhost:5000/foo/bar:tag'],
  [`127.0.0.1:5000/a@${D}`, `127.0.0.1:5000/a@${D}`],
  ['[::1]:5000/a:b', '[::1]:5000/a:b'],
  ['[fe80::1]/x', '[fe80::1]/x'],
  ['Foo/bar', 'Foo/bar'],
  ['quay.io/prometheus/node-exporter:v1.8.2', 'quay.io/prometheus/node-exporter:v1.8.2'],
  ['registry.k8s.io/ingress-nginx/controller:v1.11.2', 'registry.k8s.io/ingress-nginx/controller:v1.11.2'],
  [`nginx:1.25@${D}`, `docker.io/library/nginx:1.25@${D}`],
  [`nginx@${D}`, `docker.io/library/nginx@${D}`],
  ['a/b/c/d/e', 'docker.io/a/b/c/d/e'],
  ['my-registry.example.com:443/team/app:V1.0_rc-2', 'my-registry.example.com:443/team/app:V1.0_rc-2'],
  ['foo__bar/baz', 'docker.io/foo__bar/baz'],
  ['foo--bar/baz.qux', 'docker.io/foo--bar/baz.qux'],
  ['example.com/foo_bar', 'example.com/foo_bar'],
  ['sub.example.com:5000/ns/img:' + 'x'.repeat(128), 'sub.example.com:5000/ns/img:' + 'x'.repeat(128)],
  [' nginx ', 'docker.io/library/nginx'],
  ['example.com:5000', 'docker.io/library/example.com:5000'],
  [`localhost/a@sha512:${'b'.repeat(128)}`, `localhost/a@sha512:${'b'.repeat(128)}`],
];

const INVALID: [string, RegExp][] = [
  ['', /empty/],
  ['foo/Bar', /lowercase/],
  ['NGINX', /lowercase/],
  ['a:b:c', /tag|component/],
  ['foo/', /empty path component/],
  ['foo//bar', /empty path component/],
  ['/foo', /empty path component|no repository/],
  ['nginx:' + 'x'.repeat(129), /invalid tag/],
  ['nginx:-bad', /invalid tag/],
  [`nginx@sha256:${'a'.repeat(63)}`, /64 lowercase hex/],
  [`nginx@sha256:${'A'.repeat(64)}`, /64 lowercase hex/],
  ['nginx@sha256:xyz', /invalid digest/],
  ['nginx@', /invalid digest/],
  ['a'.repeat(64), /64-byte hexadecimal/],
  ['foo-/bar', /invalid path component/],
  ['_foo/bar', /invalid path component/],
  ['foo.-bar/x', /invalid path component|invalid registry/],
  ['example.com:port/x', /port/],
  ['-bad.example.com/x', /invalid registry/],
  ['[::1/x', /invalid registry/],
  ['example.com/' + 'a'.repeat(250), /longer than 255/],
];

test('valid references normalize as Docker does', () => {
  for (const [input, canonical] of VALID) assert.equal(formatReference(parseReference(input)), canonical, input);
});

test('invalid references are refused with exit 2 and the reason', () => {
  for (const [input, why] of INVALID) {
    assert.throws(
      () => parseReference(input),
      (err: Error & { exitCode?: number }) => err.exitCode === 2 && why.test(err.message) && err.message.includes('invalid image reference'),
      JSON.stringify(input),
    );
  }
});

test('tag and digest together are both kept; parts are exposed', () => {
  const r = parseReference(`docker.io/harness/ng-manager:1.0@${D}`);
  assert.deepEqual(r, { registry: 'docker.io', repository: 'harness/ng-manager', tag: '1.0', digest: D });
  assert.equal(referenceWithoutHost(r), `harness/ng-manager:1.0@${D}`);
});

test('the default tag is latest, only when asked and only without tag or digest', () => {
  assert.equal(parseReference('nginx').tag, undefined);
  assert.equal(withDefaultTag(parseReference('nginx')).tag, 'latest');
  assert.equal(withDefaultTag(parseReference(`nginx@${D}`)).tag, undefined);
  assert.equal(withDefaultTag(parseReference('nginx:1')).tag, '1');
});

test('Docker Hub is served by registry-1.docker.io; others by themselves', () => {
  assert.equal(apiHost('docker.io'), 'registry-1.docker.io');
  assert.equal(apiHost('127.0.0.1:5000'), '127.0.0.1:5000');
});

test('the official Harness SMP 0.44.1 image list parses to 201 distinct references', () => {
  const text = readFileSync(new URL('../../../shared/fixtures/harness/images.txt', import.meta.url), 'utf8');
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  assert.equal(lines.length, 218);
  const canonical = new Set(lines.map((l) => formatReference(parseReference(l))));
  assert.equal(canonical.size, 201);
  for (const c of canonical) assert.equal(formatReference(parseReference(c)), c, 'canonical form is a fixed point');
});
