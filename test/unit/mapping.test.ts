import { test } from 'node:test';
import assert from 'node:assert/strict';
import { internalRepository, mappingConflicts } from '../../shared/oci/mapping.ts';
import { parseReference } from '../../shared/oci/reference.ts';

test('internal names drop the source host and keep the path, under an optional prefix (DESIGN §6)', () => {
  assert.equal(internalRepository(parseReference('docker.io/harness/ng-manager:1.0')), 'harness/ng-manager');
  assert.equal(internalRepository(parseReference('nginx')), 'library/nginx');
  assert.equal(internalRepository(parseReference('registry.k8s.io/pause:3.9'), 'mirror/'), 'mirror/pause');
  assert.equal(internalRepository(parseReference('127.0.0.1:5000/a/b@sha256:' + 'a'.repeat(64)), '/x/y/'), 'x/y/a/b');
});

test('two source registries landing on one repository are conflicts; tags of one registry are not', () => {
  const refs = ['docker.io/harness/app:1', 'docker.io/harness/app:2', 'quay.io/harness/app:1', 'gcr.io/other/thing:1', 'docker.io/other/thing2:1'].map((r) =>
    parseReference(r),
  );
  assert.deepEqual(mappingConflicts(refs), [
    { repository: 'harness/app', sources: ['docker.io/harness/app:1', 'docker.io/harness/app:2', 'quay.io/harness/app:1'] },
  ]);
  assert.deepEqual(mappingConflicts(refs.slice(0, 2)), []);
});
