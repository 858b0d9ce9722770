import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, readPrivateKey } from '../../shared/sign/keys.ts';
import { buildBundle } from '../helpers/tar.ts';
import { airlock as run } from '../helpers/cli.ts';
import { resultOf } from '../json-lines.ts';

const airlock = (...args: string[]) => run(args);

test('airlock verify and inspect on a bundle file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-verify-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pair = generateKeyPair('pw');
  const key = readPrivateKey(pair.privateKeyPem, 'pw', 'k');
  writeFileSync(join(dir, 'airlock.pub'), pair.publicKeyPem);
  writeFileSync(join(dir, 'other.pub'), generateKeyPair('pw').publicKeyPem);
  const layer = Buffer.alloc(200_000, 9);
  const { tar } = buildBundle(
    [
      { path: 'manifests/app.yaml', body: Buffer.from('kind: Namespace\n') },
      { path: `oci/blobs/sha256/${'b'.repeat(64)}`, body: layer },
    ],
    key,
    (i) => (i.images = [{ ref: 'docker.io/harness/ng-manager:1.0', digest: `sha256:${'c'.repeat(64)}`, mediaType: 'application/vnd.oci.image.index.v1+json' }]),
  );
  const good = join(dir, 'good.tar');
  writeFileSync(good, tar);

  const ok = await airlock('verify', good, '--key', join(dir, 'airlock.pub'));
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /verified .*good\.tar: demo 1\.0\.0, signature ok, 2 entries \(1 images\)/);

  const okJson = await airlock('verify', good, '--key', join(dir, 'airlock.pub'), '--json');
  assert.equal(okJson.code, 0, okJson.stderr);
  const last = resultOf<{ entries: number }>(okJson.stdout, 'verify');
  assert.equal(last.entries, 2);

  const tampered = Buffer.from(tar);
  const at = tampered.indexOf(layer) + 100;
  tampered[at] = tampered[at]! ^ 0xff;
  writeFileSync(join(dir, 'bad.tar'), tampered);
  const bad = await airlock('verify', join(dir, 'bad.tar'), '--key', join(dir, 'airlock.pub'));
  assert.equal(bad.code, 3);
  assert.match(bad.stderr, /airlock: error: bad\.tar: entry oci\/blobs\/sha256\/b{64}: content has digest/);

  const wrongKey = await airlock('verify', good, '--key', join(dir, 'other.pub'));
  assert.equal(wrongKey.code, 3);
  assert.match(wrongKey.stderr, /signature does not match/);

  const missing = await airlock('verify', join(dir, 'nope.tar'), '--key', join(dir, 'airlock.pub'));
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read the bundle/);

  const inspect = await airlock('inspect', good);
  assert.equal(inspect.code, 0, inspect.stderr);
  assert.match(inspect.stdout, /demo 1\.0\.0 .*not verified/);
  assert.match(inspect.stdout, /docker\.io\/harness\/ng-manager:1\.0 {2}sha256:c{64}/);
  const inspectJson = await airlock('inspect', good, '--json');
  const inspected = resultOf<{ verified: boolean; name: string }>(inspectJson.stdout, 'inspect');
  assert.deepEqual([inspected.name, inspected.verified], ['demo', false]);
});
