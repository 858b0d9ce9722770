import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkIndexEntryPath, LOADER_PATH, parseBundleIndex } from '../../shared/bundle/format.ts';
import { VerificationError } from '../../shared/cli/errors.ts';

/** The one-file loader (pack --include-loader) is an index entry only as the first one after the signature. */
const entry = (path: string) => ({ path, size: 3, sha256: 'a'.repeat(64) });
const index = (paths: string[]) =>
  Buffer.from(JSON.stringify({ airlockVersion: 1, name: 'x', version: '1', created: '2026-11-24T00:00:00Z', platforms: [], images: [], charts: [], entries: paths.map(entry) }));

test('airlock-loader.mjs is accepted as the first entry', () => {
  assert.equal(parseBundleIndex(index([LOADER_PATH, 'manifests/a.yaml'])).entries[0]!.path, LOADER_PATH);
  assert.equal(checkIndexEntryPath(LOADER_PATH, 0), undefined);
});

test('airlock-loader.mjs anywhere else, or twice, is refused (exit 3)', () => {
  assert.throws(() => parseBundleIndex(index(['manifests/a.yaml', LOADER_PATH])), (err: unknown) => err instanceof VerificationError && /entries\[1\] "airlock-loader.mjs" has airlock-loader.mjs in a place other than the first entry/.test(err.message));
  assert.throws(() => parseBundleIndex(index([LOADER_PATH, LOADER_PATH])), VerificationError);
  assert.match(checkIndexEntryPath(LOADER_PATH, 2) ?? '', /other than the first/);
});

test('other root-level files stay refused', () => {
  for (const path of ['airlock-loader.js', 'loader.mjs', `x/${LOADER_PATH}`]) {
    assert.throws(() => parseBundleIndex(index([path])), VerificationError, path);
  }
});
