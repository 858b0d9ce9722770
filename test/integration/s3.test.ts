import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, readPrivateKey } from '../../shared/sign/keys.ts';
import { airlock, type CliOptions } from '../helpers/cli.ts';
import { buildBundle } from '../helpers/tar.ts';
import { startS3, type S3Service } from '../services/s3.ts';
import { resultOf } from '../json-lines.ts';

/** upload, download, verify and inspect with s3:// against a real S3 protocol server (s3rver, its own process). */
describe('S3 transfer', () => {
  let s3: S3Service;
  let work: string;
  let bundle: string;
  let tar: Buffer;
  const pair = generateKeyPair('pw');

  before(async () => {
    s3 = await startS3();
    work = mkdtempSync(join(tmpdir(), 'airlock-s3-'));
    ({ tar } = buildBundle(
      [
        { path: 'manifests/app.yaml', body: Buffer.from('kind: Namespace\n') },
        { path: `oci/blobs/sha256/${'d'.repeat(64)}`, body: randomBytes(22 * 1024 * 1024) },
      ],
      readPrivateKey(pair.privateKeyPem, 'pw', 'k'),
    ));
    bundle = join(work, 'harness.tar');
    writeFileSync(bundle, tar);
    writeFileSync(join(work, 'airlock.pub'), pair.publicKeyPem);
  });

  after(async () => {
    await s3?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const run = (args: string[], onSpawn?: CliOptions['onSpawn']) =>
    airlock([...args, '--s3-endpoint', s3.endpoint], { env: { ...s3.env, AWS_ENDPOINT_URL: undefined, AWS_ENDPOINT_URL_S3: undefined, AWS_PROFILE: undefined }, onSpawn });

  test('multipart upload, download: byte-identical; verify and inspect read s3:// in place', async () => {
    const up = await run(['upload', bundle, `s3://${s3.bucket}/drop/`, '--part-size', '5M', '--json']);
    assert.equal(up.code, 0, up.stderr);
    assert.equal(resultOf<{ bytes: number }>(up.stdout, 'upload').bytes, tar.length);
    assert.doesNotMatch(up.stderr, /NodeVersionSupportWarning/);
    assert.equal((await s3.storedParts()).length, Math.ceil(tar.length / (5 * 1024 * 1024)));
    const out = mkdtempSync(join(work, 'out-'));
    const down = await run(['download', `s3://${s3.bucket}/drop/harness.tar`, '-o', join(out, 'copy.tar'), '--json']);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(resultOf<{ bytes: number }>(down.stdout, 'download').bytes, tar.length);
    assert.deepEqual(readdirSync(out), ['copy.tar']);
    assert.deepEqual(readFileSync(join(out, 'copy.tar')), tar);

    const verified = await run(['verify', `s3://${s3.bucket}/drop/harness.tar`, '--key', join(work, 'airlock.pub')]);
    assert.equal(verified.code, 0, verified.stderr);
    assert.match(verified.stdout, /signature ok, 2 entries/);
    const inspected = await run(['inspect', `s3://${s3.bucket}/drop/harness.tar`]);
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.match(inspected.stdout, /demo 1\.0\.0/);
    const missing = await run(['verify', `s3://${s3.bucket}/drop/nope.tar`, '--key', join(work, 'airlock.pub')]);
    assert.equal(missing.code, 4, missing.stderr);
  });

  test('an upload killed part way resumes without sending the stored parts again', async () => {
    const before = (await s3.storedParts()).length;
    const key = `s3://${s3.bucket}/resume/harness.tar`;
    const killed = await run(['upload', bundle, key, '--part-size', '5M', '--jobs', '1'], (child) => {
      const poll = setInterval(() => {
        void s3.storedParts().then((parts) => {
          if (parts.length - before >= 2) {
            clearInterval(poll);
            child.kill('SIGKILL');
          }
        });
      }, 20);
      child.on('close', () => clearInterval(poll));
    });
    assert.equal(killed.signal, 'SIGKILL');
    const firstRun = (await s3.storedParts()).slice(before);
    assert.ok(firstRun.length >= 2 && firstRun.length < 5, `parts stored before the kill: ${firstRun.length}`);
    const again = await run(['upload', bundle, key, '--part-size', '5M']);
    assert.equal(again.code, 0, again.stderr);
    const secondRun = (await s3.storedParts()).slice(before + firstRun.length);
    assert.equal(new Set(secondRun.map((p) => p.uploadId)).size, 1);
    assert.equal(secondRun[0]!.uploadId, firstRun[0]!.uploadId, 'the same multipart upload continues');
    // s3rver has no ListParts, so the journal decides: a part the store took in the instant before
    // the kill, before the journal recorded it, is the one part that may go again (--jobs 1).
    const resent = secondRun.filter((p) => firstRun.some((f) => f.part === p.part));
    assert.ok(resent.length <= 1, `parts sent twice: ${JSON.stringify(resent)}`);
    assert.deepEqual(
      secondRun.filter((p) => !resent.includes(p)).map((p) => p.part).sort((a, b) => a - b),
      [1, 2, 3, 4, 5].filter((n) => !firstRun.some((p) => p.part === n)),
      'every missing part is sent, and no part the journal recorded',
    );
    assert.ok(firstRun.length - resent.length >= 1, 'at least one stored part was not sent again');
    const out = mkdtempSync(join(work, 'out-'));
    const down = await run(['download', key, '-o', join(out, 'copy.tar')]);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(readFileSync(join(out, 'copy.tar')), tar);
    assert.deepEqual(readdirSync(work).filter((f) => f.includes('s3-upload')), [], 'the resume journal is gone once the upload completed');
  });
});
