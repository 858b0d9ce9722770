import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { renderComponent } from '../../loader/gitops/envComponent.ts';
import { environmentName, type EnvironmentPlan } from '../../loader/gitops/envRegistry.ts';
import { renderFluxRelease } from '../../loader/gitops/flux.ts';
import { kubectl } from '../services/tools.ts';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const C1 = `sha256:${'c'.repeat(64)}`;
const SOURCE = { host: 'registry.enclave:5000', prefix: 'mirror' };
const PROD = { host: 'prod-registry.enclave', prefix: 'prod' };

test('environmentName: the path under the source prefix, under the environment prefix', () => {
  assert.equal(environmentName('registry.enclave:5000/mirror/harness/ng-manager', SOURCE, PROD), 'prod-registry.enclave/prod/harness/ng-manager');
  assert.equal(environmentName('registry.enclave:5000/mirror/harness/ng-manager', SOURCE, { host: 'r2', prefix: '' }), 'r2/harness/ng-manager');
  assert.equal(environmentName('registry.enclave:5000/other/x', SOURCE, PROD), 'prod-registry.enclave/prod/other/x', 'a name outside the prefix keeps its path');
});

test('the component, rendered by kubectl kustomize: workload images, the HelmRelease post-renderer pins and the OCIRepository all point at the environment registry, same digests; a customer patch still applies after it', () => {
  const flux = renderFluxRelease({
    chart: {
      name: 'harness-delegate-ng',
      version: '1.0.32',
      digest: C1,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      source: 'oci://charts.example/harness-delegate-ng',
      releaseName: 'delegate',
      namespace: 'harness-delegate-ng',
      gitops: 'helmrelease',
      values: 'charts/delegate/values.yaml',
      manifests: 'manifests/delegate/',
      images: [],
    },
    values: Buffer.from('replicas: 1\n'),
    registry: SOURCE,
    plainHttp: true,
    pins: [{ name: 'docker.io/harness/delegate', newName: `${SOURCE.host}/mirror/harness/delegate`, digest: D2 }],
    bundle: { name: 'harness', version: '1.0.0' },
  });
  const web = `${SOURCE.host}/mirror/library/nginx`;
  const plan: EnvironmentPlan = {
    registry: PROD,
    source: SOURCE,
    copies: [
      { kind: 'image', from: web, to: environmentName(web, SOURCE, PROD), digest: D1, tag: '1.25' },
      { kind: 'image', from: `${SOURCE.host}/mirror/harness/delegate`, to: environmentName(`${SOURCE.host}/mirror/harness/delegate`, SOURCE, PROD), digest: D2 },
      { kind: 'chart', from: `${SOURCE.host}/mirror/charts/harness-delegate-ng`, to: environmentName(`${SOURCE.host}/mirror/charts/harness-delegate-ng`, SOURCE, PROD), digest: C1 },
    ],
    releases: [{ folder: 'delegate', helmRelease: parse(flux.helmRelease.toString()) as Record<string, unknown>, ociRepository: parse(flux.ociRepository.toString()) as Record<string, unknown> }],
  };
  const component = renderComponent(plan, 'prod', { name: 'harness', version: '1.0.0' }, false);
  assert.deepEqual(renderComponent(plan, 'prod', { name: 'harness', version: '1.0.0' }, false), component, 'the same plan gives the same bytes');

  const dir = mkdtempSync(join(tmpdir(), 'airlock-component-'));
  try {
    const files: Record<string, string | Buffer> = {
      'base/web.yaml': `apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\nspec:\n  template:\n    spec:\n      containers:\n        - { name: web, image: "nginx:1.25" }\n`,
      'base/delegate/ocirepository.yaml': flux.ociRepository,
      'base/delegate/helmrelease.yaml': flux.helmRelease,
      'base/kustomization.yaml': `resources: [web.yaml, delegate/ocirepository.yaml, delegate/helmrelease.yaml]\nimages:\n  - { name: nginx, newName: ${web}, digest: ${D1} }\n`,
      'overlays/prod/airlock/kustomization.yaml': component,
      'overlays/prod/kustomization.yaml':
        'resources: [../../base]\ncomponents: [airlock]\npatches:\n  - target: { kind: HelmRelease, name: delegate }\n    patch: |-\n      - { op: replace, path: /spec/values/replicas, value: 5 }\n',
    };
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(dir, path, '..'), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    const rendered = parseAllDocuments(execFileSync(kubectl(), ['kustomize', join(dir, 'overlays/prod')], { encoding: 'utf8' })).map((d) => d.toJS() as Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any
    const byKind = (kind: string) => rendered.find((d) => d.kind === kind)!;
    assert.equal(byKind('Deployment').spec.template.spec.containers[0].image, `prod-registry.enclave/prod/library/nginx@${D1}`);
    assert.deepEqual(byKind('HelmRelease').spec.postRenderers[0].kustomize.images, [{ name: 'docker.io/harness/delegate', newName: 'prod-registry.enclave/prod/harness/delegate', digest: D2 }]);
    assert.equal(byKind('HelmRelease').spec.values.replicas, 5, 'the customer patch applies after the component');
    assert.equal(byKind('OCIRepository').spec.url, 'oci://prod-registry.enclave/prod/charts/harness-delegate-ng');
    assert.equal(byKind('OCIRepository').spec.insecure, false, 'the environment registry speaks TLS');
    assert.equal(byKind('OCIRepository').spec.ref.digest, C1);
    assert.ok(!JSON.stringify(rendered).includes(SOURCE.host), "nothing points at dev's registry");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
