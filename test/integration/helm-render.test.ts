import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { AirlockError } from '../../shared/cli/errors.ts';
import { findHelm, type Helm } from '../../packer/helm/helm.ts';
import { renderChart, type RenderedChart } from '../../packer/helm/render.ts';
import { run } from '../services/exec.ts';
import { helm3, helm4 } from '../services/tools.ts';

/**
 * Charts rendered by the real helm, 4.1.4 and 3.17.2 (test/services/tools.ts):
 * the real Harness delegate chart 1.0.32, and small charts made here for what
 * the delegate does not have (lookup, an upgrade hook and an image annotation
 * in a packaged subchart, CRDs, a test hook, a template error, a missing
 * dependency, values with commas and equals signs).
 */
const DELEGATE = join(import.meta.dirname, '..', '..', '..', 'shared', 'fixtures', 'harness', 'delegate', 'harness-delegate-ng-1.0.32.tgz');

function writeTree(root: string, files: Record<string, string>): string {
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  }
  return root;
}

const QUIRKS = {
  'Chart.yaml': [
    'apiVersion: v2',
    'name: quirks',
    'version: 0.1.0',
    'annotations:',
    '  helm.sh/images: |',
    '    - name: web',
    '      image: docker.io/library/nginx:1.25',
    '    - name: sidecar',
    '      image: ghcr.io/example/sidecar:2.0',
    'dependencies:',
    '  - name: db',
    '    version: 0.2.0',
    '',
  ].join('\n'),
  'values.yaml': 'image: docker.io/library/nginx:1.25\nlist: ""\ntag: ""\npodAnnotations: {}\nservers: []\n',
  'templates/_helpers.tpl': '{{- define "quirks.previous" -}}\n{{- $s := lookup "v1" "Secret" .Release.Namespace "quirks-state" -}}\n{{- if $s }}{{ index $s.data "version" }}{{ end -}}\n{{- end -}}\n',
  'templates/web.yaml': [
    '{{/* a lookup in a comment is not a lookup */}}',
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata: { name: web, annotations: { previous: {{ include "quirks.previous" . | quote }} } }',
    'spec:',
    '  selector: { matchLabels: { app: web } }',
    '  template:',
    '    metadata: { labels: { app: web } }',
    '    spec:',
    '      containers: [{ name: web, image: {{ .Values.image | quote }} }]',
    '---',
    'apiVersion: v1',
    'kind: Service',
    'metadata: { name: web }',
    'spec: { selector: { app: web }, ports: [{ port: 80 }] }',
    '',
  ].join('\n'),
  'templates/values-cm.yaml': [
    'apiVersion: v1',
    'kind: ConfigMap',
    'metadata: { name: values, namespace: {{ .Release.Namespace }} }',
    'data:',
    '  list: {{ .Values.list | quote }}',
    '  tag: {{ .Values.tag | quote }}',
    '  tagKind: {{ kindOf .Values.tag | quote }}',
    '  annotation: {{ index .Values.podAnnotations "example.com/list" | quote }}',
    '  servers: {{ .Values.servers | toJson | quote }}',
    '  kube: {{ .Capabilities.KubeVersion.Version | quote }}',
    '  monitoring: {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" | quote }}',
    '',
  ].join('\n'),
  'templates/tests/smoke.yaml': [
    'apiVersion: v1',
    'kind: Pod',
    'metadata: { name: smoke, annotations: { "helm.sh/hook": test } }',
    'spec: { containers: [{ name: t, image: "docker.io/library/busybox:test-only" }], restartPolicy: Never }',
    '',
  ].join('\n'),
  // An unpacked subchart folder (beside the packaged db-0.2.0.tgz).
  'charts/cache/Chart.yaml': 'apiVersion: v2\nname: cache\nversion: 3.0.0\n',
  'charts/cache/templates/cache.yaml': [
    'apiVersion: apps/v1',
    'kind: StatefulSet',
    'metadata: { name: cache, annotations: { "helm.sh/hook": "post-upgrade", "helm.sh/hook-weight": "1" } }',
    'spec:',
    '  selector: { matchLabels: { app: cache } }',
    '  serviceName: cache',
    '  template:',
    '    metadata: { labels: { app: cache } }',
    '    spec: { containers: [{ name: redis, image: "docker.io/library/redis:7" }] }',
    '',
  ].join('\n'),
  'crds/widgets.yaml': [
    'apiVersion: apiextensions.k8s.io/v1',
    'kind: CustomResourceDefinition',
    'metadata: { name: widgets.example.com }',
    'spec:',
    '  group: example.com',
    '  names: { kind: Widget, plural: widgets }',
    '  scope: Namespaced',
    '  versions: [{ name: v1, served: true, storage: true, schema: { openAPIV3Schema: { type: object } } }]',
    '',
  ].join('\n'),
};

const DB = {
  'Chart.yaml': 'apiVersion: v2\nname: db\nversion: 0.2.0\nannotations:\n  artifacthub.io/images: |\n    - name: postgres\n      image: docker.io/library/postgres:16\n',
  'values.yaml': 'image: docker.io/library/postgres:16\n',
  'templates/migrate.yaml': [
    'apiVersion: batch/v1',
    'kind: Job',
    'metadata:',
    '  name: migrate',
    '  annotations:',
    '    "helm.sh/hook": pre-install,pre-upgrade',
    'spec:',
    '  template:',
    '    spec:',
    '      restartPolicy: Never',
    '      containers: [{ name: migrate, image: {{ .Values.image | quote }} }]',
    '',
  ].join('\n'),
};

const usageError = (message: RegExp) => (err: unknown) => {
  assert.ok(err instanceof AirlockError, `expected an AirlockError, got ${String(err)}`);
  assert.equal(err.exitCode, 2, err.message);
  assert.match(err.message, message);
  return true;
};

const fingerprint = (r: RenderedChart) => r.files.map((f) => `${f.path} ${f.sha256}`);

let work: string;
let quirks: string;
let quirksTgz: string;
let broken: string;
let needsDep: string;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'airlock-helm-'));
  // A subchart packaged by the real helm, vendored as charts/db-0.2.0.tgz.
  const db = writeTree(join(work, 'src', 'db'), DB);
  quirks = writeTree(join(work, 'quirks'), QUIRKS);
  await run(helm4(), ['package', db, '--destination', join(quirks, 'charts')], { env: { HELM_CACHE_HOME: join(work, 'h'), HELM_CONFIG_HOME: join(work, 'h'), HELM_DATA_HOME: join(work, 'h') } });
  await run(helm4(), ['package', quirks, '--destination', work], { env: { HELM_CACHE_HOME: join(work, 'h'), HELM_CONFIG_HOME: join(work, 'h'), HELM_DATA_HOME: join(work, 'h') } });
  quirksTgz = join(work, 'quirks-0.1.0.tgz');
  broken = writeTree(join(work, 'broken'), {
    'Chart.yaml': 'apiVersion: v2\nname: broken\nversion: 1.0.0\n',
    'templates/secret.yaml': '{{- if .Values.token }}{{ fail (printf "token %s is not accepted" .Values.token) }}{{ end }}\napiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\ndata: { account: {{ required "accountId is required: set it in the values" .Values.accountId | quote }} }\n',
  });
  needsDep = writeTree(join(work, 'needs-dep'), {
    'Chart.yaml': 'apiVersion: v2\nname: needs-dep\nversion: 1.0.0\ndependencies:\n  - name: common\n    version: 1.x.x\n    repository: https://charts.example.invalid\n',
    'templates/cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n',
  });
});

after(() => rmSync(work, { recursive: true, force: true }));

for (const [label, binary] of [
  ['helm 4', helm4],
  ['helm 3', helm3],
] as const) {
  describe(`render with ${label}`, () => {
    let helm: Helm;
    let out: string;
    before(async () => {
      helm = await findHelm(binary());
      out = mkdtempSync(join(work, 'out-'));
    });

    test('finds the binary and its version', () => {
      assert.equal(helm.major, label === 'helm 4' ? 4 : 3);
      assert.match(helm.version, label === 'helm 4' ? /^v4\.1\.4/ : /^v3\.17\.2/);
    });

    test('the real Harness delegate chart 1.0.32 with enclave values: the delegate and upgrader images, per template files, the same bytes twice', async () => {
      const values = join(work, `delegate-${helm.major}.yaml`);
      writeFileSync(values, 'managerEndpoint: https://harness.enclave.test\naccountId: abcdEFGH1234\ndelegateToken: dG9rZW4=\nreplicas: 3\ndelegateName: enclave-delegate\n');
      const request = { chart: DELEGATE, label: 'charts[0] harness-delegate-ng', releaseName: 'delegate', namespace: 'harness-delegate-ng', values: [values], set: { 'upgrader.enabled': true } };
      const r = await renderChart(request, { helm, workDir: out });
      assert.equal(r.name, 'harness-delegate-ng');
      assert.equal(r.version, '1.0.32');
      assert.equal(r.helmVersion, helm.version);
      assert.deepEqual(
        r.images.map((i) => `${i.from} ${i.chart} ${i.image}`),
        [
          'render harness-delegate-ng us-docker.pkg.dev/gar-prod-setup/harness-public/harness/delegate:26.02.88404',
          'render harness-delegate-ng us-docker.pkg.dev/gar-prod-setup/harness-public/harness/upgrader:latest',
        ],
      );
      assert.match(r.images[0]!.where, /^manifests\/delegate\/harness-delegate-ng\/templates\/deployment\.yaml: Deployment\/enclave-delegate containers/);
      assert.ok(r.files.every((f) => f.path.startsWith('manifests/delegate/harness-delegate-ng/templates/')));
      assert.ok(r.files.some((f) => f.path === 'manifests/delegate/harness-delegate-ng/templates/upgrader/upgraderJob.yaml'));
      const deployment = readFileSync(r.files.find((f) => f.path.endsWith('/templates/deployment.yaml'))!.file, 'utf8');
      assert.match(deployment, /^---\n# Source: harness-delegate-ng\/templates\/deployment\.yaml\n/);
      assert.match(deployment, /replicas: 3\n/);
      assert.match(deployment, /namespace: harness-delegate-ng\n/);
      const config = readFileSync(r.files.find((f) => f.path.endsWith('/templates/configMap.yaml'))!.file, 'utf8');
      assert.match(config, /https:\/\/harness\.enclave\.test/);
      assert.match(config, /abcdEFGH1234/);
      assert.deepEqual(r.warnings, []);
      const again = await renderChart(request, { helm, workDir: out });
      assert.deepEqual(fingerprint(again), fingerprint(r));
    });

    for (const packaged of [false, true]) {
      test(`lookup and upgrade hooks (in subcharts, packaged and not) are warnings naming the templates; annotations, CRDs, no test pods (chart ${packaged ? '.tgz' : 'folder'})`, async () => {
        const chart = packaged ? quirksTgz : quirks;
        const r = await renderChart(
          { chart, label: 'charts[1] quirks', releaseName: 'quirks', namespace: 'apps', kubeVersion: '1.30.2', apiVersions: ['monitoring.coreos.com/v1'] },
          { helm, workDir: out },
        );
        assert.deepEqual(r.findings, [
          { chart: 'quirks', template: 'templates/_helpers.tpl', kind: 'lookup' },
          { chart: 'quirks/cache', template: 'templates/cache.yaml', kind: 'upgrade-hook' },
          { chart: 'quirks/db', template: 'templates/migrate.yaml', kind: 'upgrade-hook' },
        ]);
        assert.equal(r.warnings.length, 2, r.warnings.join('\n'));
        assert.match(r.warnings[0]!, /^chart charts\[1\] quirks: 1 template\(s\) use lookup.*: quirks\/templates\/_helpers\.tpl; consider gitops: helmrelease/);
        assert.match(r.warnings[1]!, /^chart charts\[1\] quirks: 2 template\(s\) declare upgrade hooks.*: quirks\/cache\/templates\/cache\.yaml, quirks\/db\/templates\/migrate\.yaml; consider gitops: helmrelease/);

        assert.deepEqual(r.files.map((f) => f.path), [
          'manifests/quirks/quirks/charts/cache/templates/cache.yaml',
          'manifests/quirks/quirks/charts/db/templates/migrate.yaml',
          'manifests/quirks/quirks/crds/widgets.yaml',
          'manifests/quirks/quirks/templates/values-cm.yaml',
          'manifests/quirks/quirks/templates/web.yaml',
        ]);
        const web = readFileSync(r.files.find((f) => f.path.endsWith('/web.yaml'))!.file, 'utf8');
        assert.match(web, /kind: Service[\s\S]*kind: Deployment/, 'both documents of the template, in helm order (Service before Deployment)');
        assert.equal(web.match(/^# Source: quirks\/templates\/web\.yaml$/gm)?.length, 2);

        assert.deepEqual(r.images.map((i) => `${i.from} ${i.chart} ${i.image}`).sort(), [
          'annotation quirks docker.io/library/nginx:1.25',
          'annotation quirks ghcr.io/example/sidecar:2.0',
          'annotation quirks/db docker.io/library/postgres:16',
          'render quirks docker.io/library/nginx:1.25',
          'render quirks/cache docker.io/library/redis:7',
          'render quirks/db docker.io/library/postgres:16',
        ]);
        assert.ok(!r.images.some((i) => i.image.includes('busybox')), 'test hooks are left out');

        const cm = readFileSync(r.files.find((f) => f.path.endsWith('/values-cm.yaml'))!.file, 'utf8');
        assert.match(cm, /kube: "v1\.30\.2"/);
        assert.match(cm, /monitoring: "true"/);
        assert.match(cm, /namespace: apps/);
      });
    }

    test('set values with commas, equals, dots, brackets and numbers-as-strings reach the templates as written', async () => {
      const r = await renderChart(
        {
          chart: quirks,
          releaseName: 'quirks',
          namespace: 'apps',
          set: {
            list: 'a,b=c,d',
            tag: '1.10',
            'podAnnotations.example\\.com/list': 'x=1,y=[2]',
            'servers[1].name': 'web,1',
            'servers[1].port': 8080,
          },
        },
        { helm, workDir: out },
      );
      const cm = readFileSync(r.files.find((f) => f.path.endsWith('/values-cm.yaml'))!.file, 'utf8');
      assert.match(cm, /list: "a,b=c,d"/);
      assert.match(cm, /tag: "1\.10"\n {2}tagKind: "string"/);
      assert.match(cm, /annotation: "x=1,y=\[2\]"/);
      assert.match(cm, /servers: "\[null,\{\\"name\\":\\"web,1\\",\\"port\\":8080\}\]"/);
    });

    test('a template error is exit 2 with helm\'s message, naming the chart; set values are masked', async () => {
      await assert.rejects(
        renderChart({ chart: broken, label: 'charts[2] broken', releaseName: 'broken', namespace: 'apps' }, { helm, workDir: out }),
        usageError(/^chart charts\[2\] broken: helm template failed \(helm v\d.*exit 1\): .*accountId is required: set it in the values/),
      );
      await assert.rejects(
        renderChart({ chart: broken, releaseName: 'broken', namespace: 'apps', set: { accountId: 'a', token: 'sekret-token-value' } }, { helm, workDir: out }),
        (err: unknown) => {
          usageError(/token \*\*\* is not accepted/)(err);
          assert.doesNotMatch((err as Error).message, /sekret/);
          return true;
        },
      );
    });

    test('a dependency missing from charts/ is exit 2, without reaching any repository', async () => {
      await assert.rejects(
        renderChart({ chart: needsDep, releaseName: 'x', namespace: 'apps' }, { helm, workDir: out }),
        usageError(/missing in charts\/ directory.*common|common.*missing in charts\/ directory/),
      );
    });

    test('bad release names, namespaces and values files are exit 2 before helm runs', async () => {
      await assert.rejects(renderChart({ chart: quirks, releaseName: 'Bad_Name', namespace: 'apps' }, { helm, workDir: out }), usageError(/releaseName "Bad_Name"/));
      await assert.rejects(renderChart({ chart: quirks, releaseName: '--debug', namespace: 'apps' }, { helm, workDir: out }), usageError(/releaseName "--debug"/));
      await assert.rejects(renderChart({ chart: quirks, releaseName: 'ok', namespace: 'a/b' }, { helm, workDir: out }), usageError(/namespace "a\/b"/));
      await assert.rejects(
        renderChart({ chart: quirks, releaseName: 'ok', namespace: 'apps', values: ['https://example.com/values.yaml'] }, { helm, workDir: out }),
        usageError(/values file https:\/\/example\.com\/values\.yaml not found/),
      );
    });
  });
}

describe('finding helm', () => {
  test('no helm on PATH is exit 2 saying how to get one', async () => {
    const empty = mkdtempSync(join(work, 'path-'));
    await assert.rejects(findHelm(undefined, { PATH: empty }), (err: unknown) => {
      usageError(/^helm not found on PATH/)(err);
      assert.match((err as AirlockError).hint!, /install Helm 3 or 4 .*--helm PATH/);
      return true;
    });
  });

  test('helm on PATH is found', async () => {
    const dir = mkdtempSync(join(work, 'path-'));
    await run('ln', ['-s', helm3(), join(dir, 'helm')]);
    const helm = await findHelm(undefined, { PATH: `${join(work, 'nothing-here')}:${dir}` });
    assert.equal(helm.path, join(dir, 'helm'));
    assert.equal(helm.major, 3);
  });

  test('--helm naming a missing file, or a program that is not helm, is exit 2', async () => {
    await assert.rejects(findHelm(join(work, 'no-such-helm')), usageError(/--helm .*no-such-helm: not an executable file/));
    const fake = join(work, 'fake-helm');
    writeFileSync(fake, '#!/bin/sh\necho "version.BuildInfo{Version:\\"v2.17.0\\"}"\n');
    chmodSync(fake, 0o755);
    await assert.rejects(findHelm(fake), usageError(/not Helm 3 or 4/));
  });
});

describe('helm 3 and helm 4 agree', () => {
  test('the same files, bytes and images for the delegate chart and the quirks chart', async () => {
    const results = [];
    for (const binary of [helm3, helm4]) {
      const helm = await findHelm(binary());
      const out = mkdtempSync(join(work, 'cmp-'));
      const delegate = await renderChart({ chart: DELEGATE, releaseName: 'delegate', namespace: 'harness-delegate-ng', set: { accountId: 'acc', delegateToken: 't', managerEndpoint: 'https://m' } }, { helm, workDir: out });
      const q = await renderChart({ chart: quirks, releaseName: 'quirks', namespace: 'apps', kubeVersion: '1.30.2' }, { helm, workDir: out });
      results.push({ delegate: fingerprint(delegate), quirks: fingerprint(q), images: [...delegate.images, ...q.images].map((i) => i.image) });
    }
    assert.deepEqual(results[0], results[1]);
  });
});
