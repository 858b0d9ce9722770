import { test } from 'node:test';
import assert from 'node:assert/strict';
import { discoverImages } from '../../shared/manifests/discover.ts';

const MANIFESTS = `
# image: docker.io/not/a-comment:1
apiVersion: v1
kind: ConfigMap
metadata: { name: cfg }
data:
  image: docker.io/not/configmap:1
  REFID_CACHE_IMAGE: harnesssecure/refid-cache:latest
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: ng-manager, annotations: { image: not/annotation:1 } }
spec:
  template:
    spec:
      initContainers: [{ name: wait, image: busybox:1.36 }]
      containers:
        - name: app
          image: docker.io/harnesssecure/ng-manager:1.83.4
        - name: sidecar
          image: "envoyproxy/envoy:distroless-v1.38.0"
---
apiVersion: batch/v1
kind: CronJob
metadata: { name: backup }
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{ name: b, image: harnesssecure/backup:2 }]
---
apiVersion: v1
kind: Pod
metadata: { name: debug }
spec:
  containers: [{ name: main, image: nginx }]
  ephemeralContainers: [{ name: dbg, image: busybox:debug }]
---
apiVersion: v1
kind: List
items:
  - apiVersion: apps/v1
    kind: StatefulSet
    metadata: { name: db }
    spec: { template: { spec: { containers: [{ name: pg, image: postgres:16 }] } } }
  - { apiVersion: apps/v1, kind: DaemonSet, metadata: { name: agent }, spec: { template: { spec: { containers: [{ name: a, image: agent:3 }] } } } }
  - { apiVersion: batch/v1, kind: Job, metadata: { name: migrate }, spec: { template: { spec: { containers: [{ name: m, image: migrate:4 }] } } } }
  - { apiVersion: apps/v1, kind: ReplicaSet, metadata: { name: rs }, spec: { template: { spec: { containers: [{ name: r, image: rs:5 }] } } } }
---
`;

test('images of Pods and every workload kind, in multi-document YAML; nothing else', () => {
  const found = discoverImages(MANIFESTS, 'deploy/all.yaml');
  assert.deepEqual(found.map((f) => f.image), [
    'docker.io/harnesssecure/ng-manager:1.83.4',
    'envoyproxy/envoy:distroless-v1.38.0',
    'busybox:1.36',
    'harnesssecure/backup:2',
    'nginx',
    'busybox:debug',
    'postgres:16',
    'agent:3',
    'migrate:4',
    'rs:5',
  ]);
  assert.equal(found[0]!.where, 'deploy/all.yaml: Deployment/ng-manager containers app');
});

test('invalid YAML is exit 2 naming the file', () => {
  assert.throws(() => discoverImages('a: [\n', 'bad.yaml'), (err: Error & { exitCode?: number }) => err.exitCode === 2 && /^bad.yaml: invalid YAML/.test(err.message));
});
