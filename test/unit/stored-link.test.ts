import { test } from 'node:test';
import assert from 'node:assert/strict';
import { damagedStorageHint, isInternalStorageFailure } from '../../shared/registry/stored-link.ts';

test("distribution's catch-all UNKNOWN error is an internal storage failure; other 500 bodies are not", () => {
  // What docker-registry 2.8 answers for a link file left empty by a full disk.
  assert.equal(isInternalStorageFailure('{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":{}}]}\n'), true);
  assert.equal(isInternalStorageFailure('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'), false);
  assert.equal(isInternalStorageFailure('<html><body><h1>500 Internal Server Error</h1></body></html>'), false);
  assert.equal(isInternalStorageFailure(''), false);
  assert.equal(isInternalStorageFailure('{"errors":null}'), false);
});

test('the hint names the file to remove from the registry storage', () => {
  const digest = `sha256:${'ab'.repeat(32)}`;
  assert.match(damagedStorageHint(digest), new RegExp(`docker/registry/v2/blobs/sha256/ab/${'ab'.repeat(32)}/`));
});
