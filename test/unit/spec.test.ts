import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSpec } from '../../packer/spec.ts';

const FULL = `name: harness
version: 0.44.1
platforms: [linux/amd64, linux/arm64]
images:
  - docker.io/harness/ng-manager:1.0
  - nginx
imageLists: [images.txt]
discoverImages: true
manifests:
  - path: ./deploy
  - url: https://example.com/m.tar.gz
    sha256: ${'a'.repeat(64)}
  - git: { url: https://git.example.com/app.git, ref: v1.2.0, path: deploy }
  - s3: s3://bucket/prefix/
charts:
  - { repo: https://harness.github.io/helm-charts, name: harness, version: 0.44.1 }
  - { oci: oci://registry.example.com/charts/harness, version: 0.44.1 }
`;

test('a full spec parses; relative paths resolve against the spec folder', () => {
  const s = parseSpec(FULL, '/work/app/airlock.yaml');
  assert.equal(s.name, 'harness');
  assert.equal(s.version, '0.44.1');
  assert.deepEqual(s.platforms, [
    { os: 'linux', architecture: 'amd64' },
    { os: 'linux', architecture: 'arm64' },
  ]);
  assert.deepEqual(
    s.images.map((i) => [i.reference.registry, i.reference.repository, i.line]),
    [
      ['docker.io', 'harness/ng-manager', 5],
      ['docker.io', 'library/nginx', 6],
    ],
  );
  assert.deepEqual(s.imageLists, ['/work/app/images.txt']);
  assert.equal(s.discoverImages, true);
  assert.deepEqual(s.manifests, [
    { kind: 'path', path: '/work/app/deploy' },
    { kind: 'url', url: 'https://example.com/m.tar.gz', sha256: 'a'.repeat(64) },
    { kind: 'git', url: 'https://git.example.com/app.git', ref: 'v1.2.0', path: 'deploy' },
    { kind: 's3', url: 's3://bucket/prefix/' },
  ]);
  assert.equal(s.charts.length, 2);
});

test('a version written as a YAML number keeps its text', () => {
  assert.equal(parseSpec('name: a\nversion: 1.2\n', 'a.yaml').version, '1.2');
});

test('bad specs: exit 2 naming the file, the line and the field', () => {
  const cases: [string, RegExp][] = [
    ['version: 1\n', /^s.yaml:1: missing required field name/],
    ['name: a\n', /missing required field version/],
    ['name: a\nversion: 1\nimage: [x]\n', /^s.yaml:3: unknown field image \(allowed: name, version/],
    ['name: a\nversion: 1\nimages:\n  - ok/one\n  - Bad/Name\n', /^s.yaml:5: invalid image reference "Bad\/Name"/],
    ['name: a\nversion: 1\nplatforms: [linux]\n', /^s.yaml:3: invalid platform "linux"/],
    ['name: a\nversion: 1\nimages: nginx\n', /^s.yaml:3: images must be a list/],
    ['name: a\nversion: 1\ndiscoverImages: yes please\n', /discoverImages must be true or false/],
    ['name: a\nversion: 1\nmanifests:\n  - path: x\n    url: https://y\n', /^s.yaml:4: each manifests entry has exactly one of/],
    ['name: a\nversion: 1\nmanifests:\n  - url: ftp://x\n', /manifests\[\]\.url must be http\(s\)/],
    ['name: a\nversion: 1\nmanifests:\n  - url: https://x\n    sha256: abc\n', /^s.yaml:5: manifests\[\]\.sha256 must be 64/],
    ['name: a\nversion: 1\nmanifests:\n  - git: { url: https://x, branch: main }\n', /unknown field manifests\[\]\.git\.branch/],
    ['name: a\nversion: 1\ncharts:\n  - { oci: https://x, version: 1 }\n', /charts\[\]\.oci must start with oci:\/\//],
    ['name: Harness\nversion: 1\n', /^s.yaml:1: name "Harness" must be lowercase/],
    ['name: a\nversion: 1\nname: b\n', /^s.yaml:3: invalid YAML/],
    ['- a\n- b\n', /must be a mapping/],
  ];
  for (const [text, why] of cases) {
    assert.throws(
      () => parseSpec(text, 's.yaml'),
      (err: Error & { exitCode?: number }) => err.exitCode === 2 && why.test(err.message),
      text,
    );
  }
});
