import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, parseAllDocuments } from 'yaml';
import { renderBase, type BaseInput } from '../../loader/gitops/base.ts';
import { renderFluxRelease, type FluxReleaseInput } from '../../loader/gitops/flux.ts';
import { chartTargets } from '../../loader/chart-targets.ts';
import { imageTargets } from '../../loader/targets.ts';
import type { BundleChart, BundleIndex } from '../../shared/bundle/format.ts';
import type { BundleFileScan } from '../../shared/bundle/file.ts';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const D3 = `sha256:${'3'.repeat(64)}`;
const C1 = `sha256:${'c'.repeat(64)}`;
const C2 = `sha256:${'d'.repeat(64)}`;
const OCI = 'application/vnd.oci.image.manifest.v1+json';
const REGISTRY = { host: 'registry.enclave:5000', prefix: 'mirror' };
const deploy = (name: string, ...images: string[]) =>
  Buffer.from(
    `apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: ${name} }\nspec:\n  template:\n    spec:\n      containers:\n${images.map((i, n) => `        - { name: c${n}, image: "${i}" }\n`).join('')}`,
  );

function chart(over: Partial<BundleChart>): BundleChart {
  const releaseName = over.releaseName ?? 'delegate';
  return {
    name: 'harness-delegate-ng',
    version: '1.0.32',
    digest: C1,
    mediaType: OCI,
    source: 'https://charts.example/ harness-delegate-ng',
    releaseName,
    namespace: 'harness-delegate-ng',
    gitops: 'helmrelease',
    values: `charts/${releaseName}/values.yaml`,
    manifests: `manifests/${releaseName}/`,
    images: [],
    ...over,
  };
}

function index(charts: BundleChart[]): BundleIndex {
  return {
    airlockVersion: 1,
    name: 'harness',
    version: '1.0.0',
    created: '2026-11-24T00:00:00Z',
    platforms: [],
    images: [
      { ref: 'docker.io/library/nginx:1.25', digest: D1, mediaType: OCI, charts: ['web'] },
      { ref: 'us-docker.pkg.dev/gar-prod-setup/harness-public/harness/delegate:26.02.88404', digest: D2, mediaType: OCI, charts: ['delegate'] },
      { ref: 'us-docker.pkg.dev/gar-prod-setup/harness-public/harness/upgrader:latest', digest: D3, mediaType: OCI, charts: ['delegate'] },
    ],
    charts,
    entries: [],
  };
}

/** The fields of the Flux objects the tests read. */
interface FluxDoc {
  apiVersion: string;
  kind: string;
  metadata: unknown;
  spec: {
    url?: string;
    insecure?: boolean;
    chartRef?: unknown;
    releaseName?: string;
    targetNamespace?: string;
    values?: Record<string, unknown>;
    postRenderers?: { kustomize: { images: unknown[] } }[];
  };
}
const flux = (b: Buffer): FluxDoc => parse(b.toString()) as FluxDoc;

const VALUES = Buffer.from('# enclave values\nmanagerEndpoint: https://harness.enclave.test\nreplicas: 3 # three\naccountId: "0123"\nupgrader:\n  enabled: true\n');

function fluxInput(over: Partial<FluxReleaseInput> = {}): FluxReleaseInput {
  return {
    chart: chart({ images: ['us-docker.pkg.dev/gar-prod-setup/harness-public/harness/delegate:26.02.88404'] }),
    values: VALUES,
    registry: REGISTRY,
    plainHttp: false,
    pins: [{ name: 'us-docker.pkg.dev/gar-prod-setup/harness-public/harness/delegate', newName: 'registry.enclave:5000/mirror/gar-prod-setup/harness-public/harness/delegate', digest: D2 }],
    bundle: { name: 'harness', version: '1.0.0' },
    ...over,
  };
}

test('Flux objects: the OCIRepository pins the internal chart by digest and selects the Helm chart layer; insecure only over plain HTTP', () => {
  const out = renderFluxRelease(fluxInput());
  const source = flux(out.ociRepository);
  assert.deepEqual(source, {
    apiVersion: 'source.toolkit.fluxcd.io/v1',
    kind: 'OCIRepository',
    metadata: { name: 'delegate', namespace: 'harness-delegate-ng' },
    spec: {
      interval: '10m',
      url: 'oci://registry.enclave:5000/mirror/charts/harness-delegate-ng',
      ref: { digest: C1 },
      layerSelector: { mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', operation: 'copy' },
    },
  });
  assert.match(out.ociRepository.toString(), /^# Written by airlock load: harness 1\.0\.0, chart harness-delegate-ng 1\.0\.32\./);
  const plain = flux(renderFluxRelease(fluxInput({ plainHttp: true, registry: { host: '127.0.0.1:5000', prefix: '' } })).ociRepository);
  assert.equal(plain.spec.insecure, true);
  assert.equal(plain.spec.url, 'oci://127.0.0.1:5000/charts/harness-delegate-ng');
});

test('Flux objects: the HelmRelease refers to the OCIRepository, carries the values as written and pins every image by digest', () => {
  const out = renderFluxRelease(fluxInput());
  const text = out.helmRelease.toString();
  const release = flux(out.helmRelease);
  assert.equal(release.apiVersion, 'helm.toolkit.fluxcd.io/v2');
  assert.equal(release.kind, 'HelmRelease');
  assert.deepEqual(release.metadata, { name: 'delegate', namespace: 'harness-delegate-ng' });
  assert.deepEqual(release.spec.chartRef, { kind: 'OCIRepository', name: 'delegate', namespace: 'harness-delegate-ng' });
  assert.equal(release.spec.releaseName, 'delegate');
  assert.equal(release.spec.targetNamespace, 'harness-delegate-ng');
  assert.deepEqual(release.spec.values, { managerEndpoint: 'https://harness.enclave.test', replicas: 3, accountId: '0123', upgrader: { enabled: true } });
  assert.deepEqual(Object.keys(release.spec.values!), ['managerEndpoint', 'replicas', 'accountId', 'upgrader'], 'key order kept');
  assert.match(text, /replicas: 3 # three\n/, 'comments kept');
  assert.match(text, /accountId: "0123"\n/, 'a quoted string stays a string');
  assert.deepEqual(release.spec.postRenderers, [
    { kustomize: { images: [{ name: 'us-docker.pkg.dev/gar-prod-setup/harness-public/harness/delegate', newName: 'registry.enclave:5000/mirror/gar-prod-setup/harness-public/harness/delegate', digest: D2 }] } },
  ]);
  assert.deepEqual(renderFluxRelease(fluxInput()), out, 'the same input gives the same bytes');
});

test('Flux objects: empty values and no images leave those fields out; bad values are exit 2', () => {
  const bare = flux(renderFluxRelease(fluxInput({ values: Buffer.from('# nothing\n'), pins: [] })).helmRelease);
  assert.equal('values' in bare.spec, false);
  assert.equal('postRenderers' in bare.spec, false);
  const exit2 = (values: string, why: RegExp) =>
    assert.throws(() => renderFluxRelease(fluxInput({ values: Buffer.from(values) })), (e: Error & { exitCode?: number }) => e.exitCode === 2 && why.test(e.message));
  exit2('a: [1\n', /charts\/delegate\/values\.yaml are not valid YAML/);
  exit2('- a\n- b\n', /are not a YAML map/);
  exit2('a: 1\n---\nb: 2\n', /not valid YAML/);
});

function baseInput(charts: BundleChart[], manifests: { path: string; bytes: Buffer }[], values = new Map([['charts/delegate/values.yaml', VALUES]])): BaseInput {
  return { index: index(charts), indexBytes: Buffer.from('{}'), signature: 'c2ln', manifests, chartValues: values, registry: REGISTRY, plainHttp: true, loadReport: {} };
}

const WEB = chart({ name: 'web', version: '0.1.0+build.1', digest: C2, releaseName: 'web', namespace: 'web', gitops: 'rendered', images: ['nginx:1.25'] });
const DELEGATE = chart({ images: ['us-docker.pkg.dev/gar-prod-setup/harness-public/harness/delegate:26.02.88404', 'us-docker.pkg.dev/gar-prod-setup/harness-public/harness/upgrader:latest'] });
const MANIFESTS = [
  { path: 'manifests/web/web/templates/deployment.yaml', bytes: deploy('web', 'nginx:1.25') },
  { path: 'manifests/delegate/harness-delegate-ng/templates/deployment.yaml', bytes: deploy('delegate', 'us-docker.pkg.dev/gar-prod-setup/harness-public/harness/delegate:26.02.88404') },
  { path: 'manifests/delegate/harness-delegate-ng/templates/upgrader/cronjob.yaml', bytes: deploy('upgrader', 'us-docker.pkg.dev/gar-prod-setup/harness-public/harness/upgrader:latest') },
];

test('the base with a rendered chart and a helmrelease chart: rendered YAML in the base, Flux objects in the base, the helmrelease output under rendered/ only', () => {
  const files = renderBase(baseInput([WEB, DELEGATE], MANIFESTS));
  assert.deepEqual([...files.keys()].filter((p) => !p.startsWith('airlock/')).sort(), [
    'base/delegate/helmrelease.yaml',
    'base/delegate/ocirepository.yaml',
    'base/kustomization.yaml',
    'base/web/kustomization.yaml',
    'base/web/web/templates/deployment.yaml',
    'rendered/delegate/harness-delegate-ng/templates/deployment.yaml',
    'rendered/delegate/harness-delegate-ng/templates/upgrader/cronjob.yaml',
  ]);
  assert.deepEqual(files.get('rendered/delegate/harness-delegate-ng/templates/deployment.yaml'), MANIFESTS[1]!.bytes, 'byte for byte');
  const k = parse(files.get('base/kustomization.yaml')!.toString()) as { resources: string[]; images: { name: string }[] };
  assert.deepEqual(k.resources, ['delegate/helmrelease.yaml', 'delegate/ocirepository.yaml', 'web']);
  // The rendered chart's own kustomization: its files, and its namespace where a template set none (as helm install does).
  const own = parse(files.get('base/web/kustomization.yaml')!.toString()) as { resources: string[]; transformers: string[] };
  assert.deepEqual(own.resources, ['web/templates/deployment.yaml']);
  assert.deepEqual(parse(own.transformers[0]!), {
    apiVersion: 'builtin',
    kind: 'NamespaceTransformer',
    metadata: { name: 'release-namespace', namespace: 'web' },
    unsetOnly: true,
    setRoleBindingSubjects: 'none',
  });
  assert.deepEqual(k.images.map((i) => i.name), ['nginx'], 'the helmrelease chart pins its images in the HelmRelease, not here');
  const release = flux(files.get('base/delegate/helmrelease.yaml')!);
  assert.deepEqual(
    release.spec.postRenderers![0]!.kustomize.images,
    [
      { name: 'us-docker.pkg.dev/gar-prod-setup/harness-public/harness/delegate', newName: 'registry.enclave:5000/mirror/gar-prod-setup/harness-public/harness/delegate', digest: D2 },
      { name: 'us-docker.pkg.dev/gar-prod-setup/harness-public/harness/upgrader', newName: 'registry.enclave:5000/mirror/gar-prod-setup/harness-public/harness/upgrader', digest: D3 },
    ],
  );
  const source = flux(files.get('base/delegate/ocirepository.yaml')!);
  assert.equal(source.spec.insecure, true);
  assert.deepEqual(renderBase(baseInput([WEB, DELEGATE], MANIFESTS)), files, 'deterministic');
  for (const doc of parseAllDocuments(files.get('base/delegate/helmrelease.yaml')!.toString())) assert.deepEqual(doc.errors, []);
});

test('the base refuses: an image the helmrelease chart renders but the bundle lacks (2), manifests where the Flux objects go (2), a bad release name or namespace (3), a kustomization where the rendered chart\'s goes (2), missing values (3)', () => {
  const code = (n: number, why: RegExp) => (e: Error & { exitCode?: number }) => e.exitCode === n && why.test(e.message);
  const unknown = [...MANIFESTS, { path: 'manifests/delegate/harness-delegate-ng/templates/extra.yaml', bytes: deploy('extra', 'docker.io/library/redis:7') }];
  assert.throws(() => renderBase(baseInput([WEB, DELEGATE], unknown)), code(2, /chart harness-delegate-ng \(release delegate\) use 1 image\(s\) the bundle does not carry[\s\S]*redis:7/));
  const clash = [...MANIFESTS, { path: 'manifests/delegate/extra.yaml', bytes: deploy('x', 'nginx:1.25') }];
  assert.throws(() => renderBase(baseInput([WEB, chart({ manifests: 'manifests/delegate/harness-delegate-ng/' })], clash)), code(2, /manifests under delegate\/, where airlock writes the Flux objects/));
  assert.throws(() => renderBase(baseInput([chart({ releaseName: '../up', values: 'charts/x/values.yaml' })], [])), code(3, /release name "\.\.\/up"/));
  assert.throws(() => renderBase(baseInput([{ ...WEB, namespace: 'web\nkind: Secret' }], MANIFESTS.slice(0, 1))), code(3, /namespace "web\\nkind: Secret" is not a valid Kubernetes namespace/));
  const own = [...MANIFESTS.slice(0, 1), { path: 'manifests/web/kustomization.yaml', bytes: Buffer.from('resources: []\n') }];
  assert.throws(() => renderBase(baseInput([WEB], own)), code(2, /a kustomization at the top of manifests\/web\/, where airlock writes the one of chart web/));
  assert.throws(() => renderBase(baseInput([DELEGATE], MANIFESTS.slice(1), new Map())), code(3, /values charts\/delegate\/values\.yaml are not in the bundle/));
});

function scanOf(charts: BundleChart[], extraImages: BundleIndex['images'] = []): BundleFileScan {
  const i = index(charts);
  i.images.push(...extraImages);
  const entries = [...new Set([...i.images.map((x) => x.digest), ...charts.map((c) => c.digest)])].map((d, n) => ({ path: `oci/blobs/sha256/${d.slice(7)}`, size: 100 + n, sha256: d.slice(7), offset: 0 }));
  return { index: i, indexBytes: Buffer.from('{}'), signature: '', entries, layout: undefined as never };
}

test('chart targets: [PREFIX/]charts/NAME:VERSION with "+" as "_", one push per chart version, conflicts refused', () => {
  const scan = scanOf([WEB, DELEGATE, chart({ releaseName: 'delegate-2' })]);
  const targets = chartTargets(scan, 'mirror', 'b.tar', imageTargets(scan, 'mirror', 'b.tar'));
  assert.deepEqual(
    targets.map((t) => ({ repository: t.repository, tag: t.tag, digest: t.root.digest, size: t.root.size, releases: t.chart.releases })),
    [
      { repository: 'mirror/charts/web', tag: '0.1.0_build.1', digest: C2, size: 103, releases: ['web'] },
      { repository: 'mirror/charts/harness-delegate-ng', tag: '1.0.32', digest: C1, size: 104, releases: ['delegate', 'delegate-2'] },
    ],
  );
  assert.equal(chartTargets(scan, '', 'b.tar', [])[0]!.repository, 'charts/web');
  const code = (n: number, why: RegExp) => (e: Error & { exitCode?: number }) => e.exitCode === n && why.test(e.message);
  const twice = scanOf([DELEGATE, chart({ releaseName: 'other', digest: C2 })]);
  assert.throws(() => chartTargets(twice, '', 'b.tar', []), code(3, /chart harness-delegate-ng 1\.0\.32 appears twice with different content/));
  assert.throws(() => chartTargets(scanOf([DELEGATE, chart({})]), '', 'b.tar', []), code(3, /two charts have the release name delegate/));
  const shadow = scanOf([WEB], [{ ref: 'docker.io/charts/web:1', digest: D1, mediaType: OCI }]);
  assert.throws(() => chartTargets(shadow, '', 'b.tar', imageTargets(shadow, '', 'b.tar')), code(2, /images and charts would share enclave repositories: charts\/web/));
  assert.throws(() => chartTargets(scanOf([chart({ name: 'Web' })]), '', 'b.tar', []), code(2, /cannot be an OCI repository name/));
  const absent = scanOf([DELEGATE]);
  absent.entries = absent.entries.filter((e) => e.sha256 !== C1.slice(7));
  assert.throws(() => chartTargets(absent, '', 'b.tar', []), code(3, /chart harness-delegate-ng 1\.0\.32 \(release delegate\) \(sha256:c+\) is not in the bundle/));
});

test('--map-depth folds the chart repository the OCIRepository names, as load pushes it', () => {
  const folded = flux(renderFluxRelease(fluxInput({ registry: { ...REGISTRY, mapDepth: 1 } })).ociRepository);
  assert.equal(folded.spec.url, 'oci://registry.enclave:5000/mirror/charts-harness-delegate-ng');
});
