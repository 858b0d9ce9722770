import { test } from 'node:test';
import assert from 'node:assert/strict';
import { depthConflicts, internalRepository, limitDepth } from '../../shared/oci/mapping.ts';
import { internalChartRepository } from '../../shared/oci/helm.ts';
import { parseReference } from '../../shared/oci/reference.ts';
import { pinImages } from '../../loader/gitops/pins.ts';
import { explainRefusals, type PushProbe } from '../../loader/namespace-preflight.ts';
import type { BundleIndex } from '../../shared/bundle/format.ts';

const D = 'sha256:' + 'd'.repeat(64);

test('--map-depth N keeps the first N-1 segments under the prefix and joins the rest with "-"', () => {
  assert.equal(limitDepth('ingress-nginx/controller/chroot', 2), 'ingress-nginx/controller-chroot');
  assert.equal(limitDepth('ingress-nginx/controller/chroot', 1), 'ingress-nginx-controller-chroot');
  assert.equal(limitDepth('harness/ng-manager', 2), 'harness/ng-manager', 'a path within the depth is unchanged');
  assert.equal(limitDepth('a/b/c/d', 3), 'a/b/c-d');
  assert.equal(limitDepth('a/b/c/d', undefined), 'a/b/c/d');
  assert.throws(() => limitDepth('a/b', 0), RangeError);
  const gar = parseReference('us-docker.pkg.dev/gar-prod-setup/harness-public/harness/delegate:26.02');
  // The prefix is never folded: it is the place in the registry (a GitLab group/project).
  assert.equal(internalRepository(gar, 'group/project', 2), 'group/project/gar-prod-setup/harness-public-harness-delegate');
  assert.equal(internalRepository(gar, '', 2), 'gar-prod-setup/harness-public-harness-delegate');
  assert.equal(internalRepository(gar, 'mirror'), 'mirror/gar-prod-setup/harness-public/harness/delegate');
  assert.equal(internalChartRepository('harness', 'group/project', 1), 'group/project/charts-harness');
  assert.equal(internalChartRepository('harness', 'group/project', 2), 'group/project/charts/harness');
});

test('--map-depth folding two source repositories into one is a conflict', () => {
  assert.deepEqual(depthConflicts(['a/b/c', 'a/b-c', 'x/y'], 2), [{ repository: 'a/b-c', sources: ['a/b-c', 'a/b/c'] }]);
  assert.deepEqual(depthConflicts(['a/b/c', 'a/b-c'], undefined), []);
  assert.deepEqual(depthConflicts(['a/b/c', 'a/b-c'], 3), []);
});

test('the git base pins the folded names load pushes', () => {
  const index = { images: [{ ref: 'registry.k8s.io/ingress-nginx/controller/chroot:v1.9', digest: D, mediaType: 'application/vnd.oci.image.index.v1+json' }] } as unknown as BundleIndex;
  const manifest = Buffer.from('apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: registry.k8s.io/ingress-nginx/controller/chroot:v1.9\n');
  const pins = pinImages([{ path: 'web.yaml', bytes: manifest }], { index, registry: { host: 'gitlab.enclave:5050', prefix: 'group/project', mapDepth: 2 } });
  assert.deepEqual(pins, [{ name: 'registry.k8s.io/ingress-nginx/controller/chroot', newName: 'gitlab.enclave:5050/group/project/ingress-nginx/controller-chroot', digest: D }]);
});

const display = (r: string) => `reg.enclave/${r}`;
const refused = (repository: string, status = 401, detail = 'UNAUTHORIZED: authentication required'): PushProbe => ({ repository, refusal: { status, detail } });
const accepted = (repository: string): PushProbe => ({ repository });

test('refusals in a namespace nothing could be pushed to: create it (Harbor project missing)', () => {
  const err = explainRefusals([refused('harness/gateway'), refused('harness/ng-manager'), accepted('library/nginx')], { prefix: '', display })!;
  assert.equal(err.exitCode, 4);
  assert.match(err.message, /refuses pushes to 2 of 3 repositories; nothing was written/);
  assert.match(err.message, /reg\.enclave\/harness\/gateway: HTTP 401 UNAUTHORIZED: authentication required/);
  assert.match(err.hint!, /create the namespace harness in the registry \(a Harbor project/);
  assert.doesNotMatch(err.hint!, /--map-depth/);
  assert.equal(explainRefusals([accepted('a/b')], { prefix: '', display }), undefined);
});

test('refusals of exactly the deeper paths: the registry limits the depth, --map-depth suggested (GitLab)', () => {
  const probes = [accepted('group/project/harness/gateway'), refused('group/project/harness/tools/upgrader', 403, 'DENIED: access forbidden'), accepted('group/project/library/nginx')];
  const err = explainRefusals(probes, { prefix: 'group/project', display })!;
  assert.match(err.hint!, /only repository paths of more than 4 segments were refused/);
  assert.match(err.hint!, /pass --map-depth 2 \(keeps the first 1 segment under the prefix/);
  // Already folded that far: only a shorter prefix helps.
  assert.match(explainRefusals(probes, { prefix: 'group/project', mapDepth: 2, display })!.hint!, /give a shorter --registry prefix/);
});

test('a read-only registry and wrong credentials are said as such', () => {
  assert.match(explainRefusals([refused('a/b', 405, 'UNSUPPORTED')], { prefix: '', display })!.hint!, /read-only/);
  assert.match(explainRefusals([refused('a/b'), refused('c/d')], { prefix: '', display })!.hint!, /--registry-username/);
});

test('a registry that creates no repository on push (ECR: 404 NAME_UNKNOWN) is told apart', () => {
  const err = explainRefusals([refused('harness/gateway', 404, "NAME_UNKNOWN: The repository with name 'harness/gateway' does not exist")], { prefix: '', display })!;
  assert.match(err.hint!, /create each repository listed first/);
});
