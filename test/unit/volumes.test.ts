import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyBundleFile } from '../../shared/bundle/file-verifier.ts';
import { readBundle } from '../../shared/bundle/reader.ts';
import { openBundleBytes, parseVolumeSize, splitBundle } from '../../shared/bundle/volumes.ts';
import { generateKeyPair, readPrivateKey, readPublicKey } from '../../shared/sign/keys.ts';
import { airlock } from '../helpers/cli.ts';
import { buildBundle } from '../helpers/tar.ts';

const pair = generateKeyPair('pw');
const key = readPrivateKey(pair.privateKeyPem, 'pw', 'k');
const pub = readPublicKey(pair.publicKeyPem, 'p');

function bundleIn(dir: string): { file: string; tar: Buffer } {
  const { tar } = buildBundle(
    [
      { path: 'manifests/app.yaml', body: Buffer.from('kind: Namespace\n') },
      { path: `oci/blobs/sha256/${'a'.repeat(64)}`, body: randomBytes(2_500_000) },
      { path: `oci/blobs/sha256/${'b'.repeat(64)}`, body: randomBytes(700_000) },
    ],
    key,
  );
  const file = join(dir, 'demo.tar');
  writeFileSync(file, tar);
  return { file, tar };
}

test('volume sizes: binary units, decimal units, bytes; nonsense and tiny sizes are exit 2', () => {
  assert.equal(parseVolumeSize('4G'), 4 * 1024 ** 3);
  assert.equal(parseVolumeSize('700M'), 700 * 1024 ** 2);
  assert.equal(parseVolumeSize('1.5GiB'), 1.5 * 1024 ** 3);
  assert.equal(parseVolumeSize('4GB'), 4e9);
  assert.equal(parseVolumeSize('1048576'), 1048576);
  for (const bad of ['lots', '4X', '-1G', '512K']) assert.throws(() => parseVolumeSize(bad), (e: Error & { exitCode?: number }) => e.exitCode === 2, bad);
});

test('split: volumes are byte ranges of the tar; the first volume verifies and reads like the whole file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-vol-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { file, tar } = bundleIn(dir);
  const { parts } = await splitBundle(file, 1024 * 1024, dir);
  assert.equal(parts.volumes.length, Math.ceil(tar.length / (1024 * 1024)));
  assert.deepEqual(readdirSync(dir).sort(), ['demo.tar', 'demo.tar.000', 'demo.tar.001', 'demo.tar.002', 'demo.tar.003', 'demo.tar.parts.json']);
  assert.deepEqual(Buffer.concat(parts.volumes.map((v) => readFileSync(join(dir, v.file)))), tar, 'the volumes reassemble');

  const bytes = await openBundleBytes(join(dir, 'demo.tar.000'));
  try {
    assert.equal(bytes.name, 'demo.tar');
    assert.equal(bytes.size, tar.length);
    assert.deepEqual(await bytes.read(1024 * 1024 - 10, 20), tar.subarray(1024 * 1024 - 10, 1024 * 1024 + 10), 'a read across a volume boundary');
    const result = await verifyBundleFile(bytes, { publicKey: pub, source: bytes.name, threads: 2 });
    assert.equal(result.method, 'parallel');
    const index = await readBundle(bytes.stream(0, bytes.size), { publicKey: pub, source: bytes.name });
    assert.equal(index.entries.length, 3);
  } finally {
    await bytes.close();
  }
});

test('a missing, truncated or damaged volume is named before any work (exit 3)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-vol-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { file } = bundleIn(dir);
  await splitBundle(file, 1024 * 1024, dir);
  const exit3 = (re: RegExp) => (e: Error & { exitCode?: number }) => e.exitCode === 3 && re.test(e.message);

  const v2 = join(dir, 'demo.tar.002');
  const saved = readFileSync(v2);
  const damaged = Buffer.from(saved);
  damaged[100] = damaged[100]! ^ 1;
  writeFileSync(v2, damaged);
  await assert.rejects(openBundleBytes(join(dir, 'demo.tar.000')), exit3(/demo\.tar\.002 is damaged/));
  truncateSync(v2, 1000);
  await assert.rejects(openBundleBytes(join(dir, 'demo.tar.000')), exit3(/demo\.tar\.002 is 1000 bytes, the parts list says/));
  rmSync(v2);
  await assert.rejects(openBundleBytes(join(dir, 'demo.tar.000')), exit3(/demo\.tar\.002 is missing \(volume 3 of 4/));
  writeFileSync(v2, saved);
  rmSync(join(dir, 'demo.tar.parts.json'));
  await assert.rejects(openBundleBytes(join(dir, 'demo.tar.000')), exit3(/parts list .* missing/));
});

test('airlock split, then verify and inspect take the first volume', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-vol-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { file } = bundleIn(dir);
  writeFileSync(join(dir, 'airlock.pub'), pair.publicKeyPem);
  const split = await airlock(['split', file, '--volume-size', '1M', '--out-dir', dir]);
  assert.equal(split.code, 0, split.stderr);
  assert.match(split.stdout, /split .*demo\.tar into 4 volumes/);
  const verified = await airlock(['verify', join(dir, 'demo.tar.000'), '--key', join(dir, 'airlock.pub')]);
  assert.equal(verified.code, 0, verified.stderr);
  assert.match(verified.stdout, /verified .*demo\.tar\.000: demo 1\.0\.0, signature ok, 3 entries/);
  const inspected = await airlock(['inspect', join(dir, 'demo.tar.000')]);
  assert.equal(inspected.code, 0, inspected.stderr);
  assert.match(inspected.stdout, /demo 1\.0\.0/);
});
