import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AirlockError } from '../../shared/cli/errors.ts';
import { parseSetKey, setToValues } from '../../packer/helm/set-values.ts';
import { findingMessages, hasUpgradeHook, scanTemplates, usesLookup, annotatedImages } from '../../packer/helm/scan.ts';
import { splitRendered } from '../../packer/helm/split.ts';
import { chartOfSource } from '../../packer/helm/render.ts';
import { isolatedEnv } from '../../packer/helm/helm.ts';
import { readChartTree } from '../../packer/helm/chart-files.ts';
import { create as createTar } from 'tar';

const usage = (fn: () => unknown, message: RegExp) =>
  assert.throws(fn, (err: unknown) => err instanceof AirlockError && err.exitCode === 2 && message.test(err.message));

describe('set: key paths as helm --set names them, into a values tree', () => {
  test('dots, escaped dots and list indexes', () => {
    assert.deepEqual(parseSetKey('a.b.c'), ['a', 'b', 'c']);
    assert.deepEqual(parseSetKey('podAnnotations.prometheus\\.io/scrape'), ['podAnnotations', 'prometheus.io/scrape']);
    assert.deepEqual(parseSetKey('servers[1].port'), ['servers', 1, 'port']);
    assert.deepEqual(parseSetKey('m[0][2]'), ['m', 0, 2]);
  });

  test('bad keys are usage errors', () => {
    for (const key of ['', 'a..b', '.a', 'a.', '[0]', 'a[x]', 'a[1', 'a]', 'a[1]b', 'a\\', 'a[10001]']) usage(() => parseSetKey(key), /key/);
  });

  test('scalars keep their type: a string holding commas, "=" or a number stays a string', () => {
    assert.deepEqual(
      setToValues({ 'a.list': 'x,y=z', 'a.tag': '1.10', 'a.n': 3, 'a.on': true, gone: null, 'servers[1].port': 80, 'servers[1].name': 'web' }),
      { a: { list: 'x,y=z', tag: '1.10', n: 3, on: true }, gone: null, servers: [null, { port: 80, name: 'web' }] },
    );
  });

  test('a value where another key needs a map is a usage error', () => {
    usage(() => setToValues({ 'a.b': 1, 'a.b.c': 2 }), /sets a value where another key needs a map/);
    usage(() => setToValues({ 'a.b.c': 2, 'a.b': 1 }), /sets a value where another key needs a map/);
    usage(() => setToValues({ 'a[0]': 1, 'a.b': 2 }), /sets a value where another key needs a map/);
  });

  test('__proto__ is an ordinary key, not a way into Object.prototype', () => {
    const v = setToValues({ '__proto__.polluted': 'yes' });
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.deepEqual(Object.keys(v), ['__proto__']);
  });
});

describe('templates a static render cannot honour', () => {
  test('lookup calls, not comments or other words', () => {
    assert.ok(usesLookup('{{- $s := lookup "v1" "Secret" .Release.Namespace "x" }}'));
    assert.ok(usesLookup('{{ if (lookup "v1" "ConfigMap" "ns" "n") }}x{{ end }}'));
    assert.ok(usesLookup('{{\n  lookup "v1" "Secret" "" ""\n| toYaml }}'));
    assert.ok(!usesLookup('{{/* lookup "v1" "Secret" "" "" is not used here */}}'));
    assert.ok(!usesLookup('{{- /* lookup "v1" */ -}}'));
    assert.ok(!usesLookup('lookup: outside an action\n{{ .Values.lookupTable }}'));
  });

  test('upgrade hooks, not install-only hooks', () => {
    assert.ok(hasUpgradeHook('annotations:\n  "helm.sh/hook": pre-install,pre-upgrade\n'));
    assert.ok(hasUpgradeHook('annotations:\n  helm.sh/hook: post-upgrade\n'));
    assert.ok(!hasUpgradeHook('annotations:\n  "helm.sh/hook": pre-install\n  "helm.sh/hook-delete-policy": before-hook-creation\n'));
    assert.ok(!hasUpgradeHook('annotations:\n  "helm.sh/hook": test\n'));
  });

  test('findings name chart and template; one message per kind', () => {
    const charts = [
      { chain: ['app'], name: 'app', version: '1', annotations: {}, templates: new Map([['templates/_helpers.tpl', '{{ lookup "v1" "Secret" "" "" }}'], ['templates/ok.yaml', 'kind: A']]) },
      { chain: ['app', 'db'], name: 'db', version: '2', annotations: {}, templates: new Map([['templates/migrate.yaml', '"helm.sh/hook": pre-upgrade']]) },
    ];
    const findings = scanTemplates(charts);
    assert.deepEqual(findings, [
      { chart: 'app', template: 'templates/_helpers.tpl', kind: 'lookup' },
      { chart: 'app/db', template: 'templates/migrate.yaml', kind: 'upgrade-hook' },
    ]);
    const messages = findingMessages('charts[0] app', findings);
    assert.equal(messages.length, 2);
    assert.match(messages[0]!, /^chart charts\[0\] app: 1 template\(s\) use lookup.*app\/templates\/_helpers\.tpl.*gitops: helmrelease/);
    assert.match(messages[1]!, /upgrade hooks.*app\/db\/templates\/migrate\.yaml.*gitops: helmrelease/);
  });

  test('image annotations: both keys, each chart; anything else is a warning', () => {
    const warnings: string[] = [];
    const images = annotatedImages(
      [
        { chain: ['app'], name: 'app', version: '1', annotations: { 'helm.sh/images': '- name: web\n  image: nginx:1.25\n' }, templates: new Map() },
        { chain: ['app', 'db'], name: 'db', version: '2', annotations: { 'artifacthub.io/images': '- name: pg\n  image: docker.io/bitnami/postgresql:16\n- name: none\n', 'helm.sh/images': 'not: a list' }, templates: new Map() },
      ],
      (m) => warnings.push(m),
    );
    assert.deepEqual(images.map((i) => `${i.chart} ${i.image}`), ['app nginx:1.25', 'app/db docker.io/bitnami/postgresql:16']);
    assert.equal(warnings.length, 2);
    assert.match(warnings.join('\n'), /app\/db Chart\.yaml annotation helm\.sh\/images: not a list/);
    assert.match(warnings.join('\n'), /artifacthub\.io\/images: an entry without an image/);
  });
});

describe('splitting helm template output per template', () => {
  const work = mkdtempSync(join(tmpdir(), 'airlock-split-'));
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');

  test('one file per # Source path, documents of one template together in helm order', async () => {
    const rendered = join(work, 'rendered.yaml');
    writeFileSync(
      rendered,
      '---\n# Source: app/templates/sa.yaml\nkind: ServiceAccount\n---\n# Source: app/charts/db/templates/svc.yaml\nkind: Service\n' +
        '---\n# Source: app/templates/sa.yaml\nkind: Secret\ndata:\n  x: |\n    --- not a separator\n---\n# Source: app/crds/crd.yaml\nkind: CustomResourceDefinition\n---\n',
    );
    const files = await splitRendered(rendered, join(work, 'out'), 'test');
    assert.deepEqual(files.map((f) => f.rel), ['app/charts/db/templates/svc.yaml', 'app/crds/crd.yaml', 'app/templates/sa.yaml']);
    const sa = readFileSync(join(work, 'out/app/templates/sa.yaml'), 'utf8');
    assert.equal(sa, '---\n# Source: app/templates/sa.yaml\nkind: ServiceAccount\n---\n# Source: app/templates/sa.yaml\nkind: Secret\ndata:\n  x: |\n    --- not a separator\n');
    const f = files.find((x) => x.rel === 'app/templates/sa.yaml')!;
    assert.equal(f.sha256, sha(sa));
    assert.equal(f.size, Buffer.byteLength(sa));
    assert.equal(readFileSync(join(work, 'out/app/crds/crd.yaml'), 'utf8'), '---\n# Source: app/crds/crd.yaml\nkind: CustomResourceDefinition\n');
  });

  test('a source path that climbs out is refused (exit 3)', async () => {
    const rendered = join(work, 'bad.yaml');
    writeFileSync(rendered, '---\n# Source: app/templates/../../../etc/x.yaml\nkind: A\n');
    await assert.rejects(splitRendered(rendered, join(work, 'out2'), 'test'), (err: unknown) => err instanceof AirlockError && err.exitCode === 3 && /cannot store/.test(err.message));
  });

  test('the chart an output file belongs to, from its path', () => {
    assert.equal(chartOfSource('harness-delegate-ng/templates/deployment.yaml'), 'harness-delegate-ng');
    assert.equal(chartOfSource('harness/charts/platform/charts/ng-manager/templates/x.yaml'), 'harness/platform/ng-manager');
    assert.equal(chartOfSource('app/crds/crd.yaml'), 'app');
  });
});

test("helm's environment: its homes in the work folder, none of the user's Helm or kube settings, proxies that go nowhere", () => {
  const saved = { ...process.env };
  try {
    Object.assign(process.env, { HELM_REPOSITORY_CONFIG: '/home/u/repos.yaml', HELM_REGISTRY_CONFIG: '/home/u/config.json', KUBECONFIG: '/home/u/kube', HTTPS_PROXY: 'http://proxy:3128' });
    const env = isolatedEnv('/work/h');
    assert.deepEqual(Object.keys(env).sort(), ['HELM_CACHE_HOME', 'HELM_CONFIG_HOME', 'HELM_DATA_HOME', 'HOME', 'HTTPS_PROXY', 'HTTP_PROXY', 'KUBECONFIG', 'NO_PROXY', 'PATH', 'http_proxy', 'https_proxy', 'no_proxy']);
    assert.equal(env.HELM_CONFIG_HOME, '/work/h/config');
    assert.equal(env.KUBECONFIG, '/work/h/kubeconfig');
    assert.equal(env.HTTPS_PROXY, 'http://127.0.0.1:9');
    assert.equal(env.PATH, process.env.PATH);
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});

describe('reading a chart without helm', () => {
  const work = mkdtempSync(join(tmpdir(), 'airlock-chartfiles-'));
  const put = (rel: string, text: string) => {
    mkdirSync(join(work, rel, '..'), { recursive: true });
    writeFileSync(join(work, rel), text);
  };

  test('a folder with a subchart folder and a packaged subchart inside a packaged subchart', async () => {
    put('src/leaf/Chart.yaml', 'apiVersion: v2\nname: leaf\nversion: 0.0.1\n');
    put('src/leaf/templates/a.yaml', 'leaf template');
    put('src/mid/Chart.yaml', 'apiVersion: v2\nname: mid\nversion: 0.1.0\nannotations: { helm.sh/images: "- image: x:1" }\n');
    put('src/mid/values.yaml', 'not read');
    put('src/mid/templates/m.yaml', 'mid template');
    mkdirSync(join(work, 'src/mid/charts'));
    await createTar({ gzip: true, cwd: join(work, 'src'), file: join(work, 'src/mid/charts/leaf-0.0.1.tgz'), portable: true }, ['leaf']);
    put('app/Chart.yaml', 'apiVersion: v2\nname: app\nversion: 1.0.0\n');
    put('app/templates/t.yaml', 'app template');
    put('app/charts/side/Chart.yaml', 'apiVersion: v2\nname: side\nversion: 2.0.0\n');
    put('app/charts/side/templates/s.yaml', 'side template');
    mkdirSync(join(work, 'app/charts'), { recursive: true });
    await createTar({ gzip: true, cwd: join(work, 'src'), file: join(work, 'app/charts/mid-0.1.0.tgz'), portable: true }, ['mid']);
    const tree = await readChartTree(join(work, 'app'));
    assert.deepEqual(
      tree.map((c) => `${c.chain.join('/')}@${c.version} ${[...c.templates.keys()].join(',')}`),
      ['app@1.0.0 templates/t.yaml', 'app/side@2.0.0 templates/s.yaml', 'app/mid@0.1.0 templates/m.yaml', 'app/mid/leaf@0.0.1 templates/a.yaml'],
    );
    assert.deepEqual(tree[2]!.annotations, { 'helm.sh/images': '- image: x:1' });
    assert.equal(tree[3]!.templates.get('templates/a.yaml'), 'leaf template');
  });

  test('a file that is not a chart archive is exit 3; a chart without Chart.yaml or a missing path is exit 2', async () => {
    put('junk.tgz', 'not gzip, not tar');
    await assert.rejects(readChartTree(join(work, 'junk.tgz')), (err: unknown) => err instanceof AirlockError && err.exitCode === 3 && /not a readable chart archive/.test(err.message));
    put('empty/templates/x.yaml', 'x');
    await assert.rejects(readChartTree(join(work, 'empty')), (err: unknown) => err instanceof AirlockError && err.exitCode === 2 && /no Chart\.yaml/.test(err.message));
    await assert.rejects(readChartTree(join(work, 'nowhere')), (err: unknown) => err instanceof AirlockError && err.exitCode === 2 && /not found/.test(err.message));
  });
});
