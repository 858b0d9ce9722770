import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultReleaseName, parseSpec } from '../../packer/spec.ts';

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
  - { oci: oci://registry.example.com/charts/harness, version: 0.44.1, releaseName: harness-oci }
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

const CHARTS = `name: harness
version: 0.44.1
charts:
  - repo: https://harness.github.io/helm-charts
    name: harness
    version: 0.44.1
    namespace: harness-ns
    values: [values/enclave.yaml, values/extra.yaml]
    set: { global.ingress.enabled: true, 'podAnnotations.prometheus\\.io/scrape': "true", replicas: 3, gone: null, tag: 1.10 }
    gitops: helmrelease
    kubeVersion: 1.30.0
    apiVersions: [monitoring.coreos.com/v1]
  - { oci: oci://registry.example.com/charts/harness-delegate-ng, version: 1.10 }
  - { path: ./charts/my-app, releaseName: my-app-prod }
  - { git: { url: https://git.example.com/c.git, ref: v1, path: src/harness }, releaseName: harness-git }
`;

test('charts: every source kind and field; defaults; paths against the spec folder; numbers keep their text', () => {
  const s = parseSpec(CHARTS, '/work/app/airlock.yaml');
  assert.deepEqual(s.charts[0], {
    source: { kind: 'repo', repo: 'https://harness.github.io/helm-charts', name: 'harness', version: '0.44.1' },
    where: '/work/app/airlock.yaml:4',
    namespace: 'harness-ns',
    values: ['/work/app/values/enclave.yaml', '/work/app/values/extra.yaml'],
    set: { 'global.ingress.enabled': true, 'podAnnotations.prometheus\\.io/scrape': 'true', replicas: 3, gone: null, tag: 1.1 },
    gitops: 'helmrelease',
    kubeVersion: '1.30.0',
    apiVersions: ['monitoring.coreos.com/v1'],
  });
  assert.deepEqual(s.charts[1], { source: { kind: 'oci', oci: 'oci://registry.example.com/charts/harness-delegate-ng', version: '1.10' }, where: '/work/app/airlock.yaml:13', values: [], set: {}, gitops: 'rendered' });
  assert.deepEqual(s.charts[2]!.source, { kind: 'path', path: '/work/app/charts/my-app' });
  assert.equal(s.charts[2]!.releaseName, 'my-app-prod');
  assert.deepEqual(s.charts[3]!.source, { kind: 'git', git: { url: 'https://git.example.com/c.git', ref: 'v1', path: 'src/harness' } });
  assert.deepEqual(s.charts.map((c) => defaultReleaseName(c)), ['harness', 'harness-delegate-ng', 'my-app-prod', 'harness-git']);
  assert.equal(defaultReleaseName(parseSpec('name: a\nversion: 1\ncharts: [{ path: ./c }]\n', 'a.yaml').charts[0]!), undefined, 'a path chart is named by its Chart.yaml');
});

test('bad charts entries: exit 2 naming the file, the line and the field', () => {
  const head = 'name: a\nversion: 1\ncharts:\n';
  const cases: [string, RegExp][] = [
    ['  - { repo: https://x, oci: oci://y, version: 1 }\n', /^s.yaml:4: each charts entry is a mapping with exactly one of repo \(with name\), oci, path, git/],
    ['  - { version: 1 }\n', /exactly one of repo/],
    ['  - { repo: https://x, version: 1 }\n', /^s.yaml:4: missing required field charts\[\]\.name/],
    ['  - { repo: https://x, name: n }\n', /missing required field charts\[\]\.version/],
    ['  - { oci: oci://r/c }\n', /missing required field charts\[\]\.version/],
    ['  - { repo: ftp://x, name: n, version: 1 }\n', /charts\[\]\.repo must be an http\(s\) chart repository URL/],
    ['  - { path: ./c, version: 1 }\n', /^s.yaml:4: unknown field charts\[\]\.version/],
    ['  - { path: ./c, valuesFiles: [a] }\n', /unknown field charts\[\]\.valuesFiles \(allowed: path, releaseName/],
    ['  - { path: ./c, releaseName: Bad_Name }\n', /^s.yaml:4: charts\[\]\.releaseName "Bad_Name" is not a valid Helm release name/],
    ['  - { path: ./c, namespace: a.b }\n', /charts\[\]\.namespace "a\.b" is not a valid Kubernetes namespace/],
    ['  - path: ./c\n    values: a.yaml\n', /^s.yaml:5: charts\[\]\.values must be a list/],
    ['  - path: ./c\n    set: [a]\n', /^s.yaml:5: charts\[\]\.set must be a mapping/],
    ['  - path: ./c\n    set:\n      a: [1]\n', /^s.yaml:6: charts\[\]\.set\.a must be a scalar/],
    ['  - path: ./c\n    set:\n      "a..b": 1\n', /^s.yaml:6: charts\[\]\.set: key "a\.\.b": an empty name/],
    ['  - path: ./c\n    gitops: flux\n', /^s.yaml:5: charts\[\]\.gitops must be rendered or helmrelease, not "flux"/],
    ['  - path: ./c\n    kubeVersion: latest\n', /charts\[\]\.kubeVersion "latest" is not a Kubernetes version/],
    ['  - path: ./c\n    apiVersions: [{ a: 1 }]\n', /charts\[\]\.apiVersions entries must be strings/],
    ['  - { git: { url: https://x, branch: main } }\n', /unknown field charts\[\]\.git\.branch/],
    ['  - { repo: https://x, name: web, version: 1 }\n  - { oci: oci://r/web, version: 1 }\n', /^s.yaml:5: release name "web" is already used by the chart at s.yaml:4/],
    ['  - { path: ./a, releaseName: x }\n  - path: ./b\n    releaseName: x\n', /^s.yaml:6: release name "x" is already used/],
  ];
  for (const [text, why] of cases) {
    assert.throws(
      () => parseSpec(head + text, 's.yaml'),
      (err: Error & { exitCode?: number }) => err.exitCode === 2 && why.test(err.message),
      text,
    );
  }
});
