import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { splitBundle } from '../../shared/bundle/volumes.ts';
import { RESUME_WINDOW, uploadSftp } from '../../shared/transfer/sftp.ts';
import { generateKeyPair, readPrivateKey } from '../../shared/sign/keys.ts';
import { airlock } from '../helpers/cli.ts';
import { buildBundle } from '../helpers/tar.ts';
import { startSshd, type SshServer } from '../services/sshd.ts';

/** upload and download over SFTP against a real OpenSSH sshd (internal-sftp). */
describe('SFTP transfer', () => {
  let sshd: SshServer;
  let work: string;
  let bundle: string;
  let tar: Buffer;
  const pair = generateKeyPair('pw');

  before(async () => {
    sshd = await startSshd();
    work = mkdtempSync(join(tmpdir(), 'airlock-sftp-'));
    ({ tar } = buildBundle(
      [
        { path: 'manifests/app.yaml', body: Buffer.from('kind: Namespace\n') },
        { path: `oci/blobs/sha256/${'c'.repeat(64)}`, body: randomBytes(12_000_000) },
      ],
      readPrivateKey(pair.privateKeyPem, 'pw', 'k'),
    ));
    bundle = join(work, 'harness.tar');
    writeFileSync(bundle, tar);
    writeFileSync(join(work, 'airlock.pub'), pair.publicKeyPem);
  });

  after(async () => {
    await sshd?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const ssh = () => ['--ssh-key', sshd.clientKey, '--known-hosts', sshd.knownHosts];

  test('a bundle makes a byte-identical round trip, and verifies after it', async () => {
    const drop = mkdtempSync(join(work, 'drop-'));
    const up = await airlock(['upload', bundle, sshd.url(`${drop}/`).replace('ssh://', 'sftp://'), ...ssh()]);
    assert.equal(up.code, 0, up.stderr);
    assert.deepEqual(readdirSync(drop), ['harness.tar']);
    assert.deepEqual(readFileSync(join(drop, 'harness.tar')), tar);
    const out = mkdtempSync(join(work, 'out-'));
    const down = await airlock(['download', sshd.url(`${drop}/harness.tar`).replace('ssh://', 'sftp://'), '-o', join(out, 'copy.tar'), ...ssh()]);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(readdirSync(out), ['copy.tar']);
    assert.deepEqual(readFileSync(join(out, 'copy.tar')), tar);
    const verified = await airlock(['verify', join(out, 'copy.tar'), '--key', join(work, 'airlock.pub')]);
    assert.equal(verified.code, 0, verified.stderr);
  });

  test('a split bundle travels whole (volumes and parts list) and reassembles', async () => {
    const vols = mkdtempSync(join(work, 'vols-'));
    await splitBundle(bundle, 1024 * 1024, vols);
    const drop = mkdtempSync(join(work, 'drop-'));
    const up = await airlock(['upload', join(vols, 'harness.tar.000'), sshd.url(`${drop}/`).replace('ssh://', 'sftp://'), ...ssh()]);
    assert.equal(up.code, 0, up.stderr);
    assert.deepEqual(readdirSync(drop).sort(), readdirSync(vols).sort());
    const out = mkdtempSync(join(work, 'out-'));
    const down = await airlock(['download', sshd.url(`${drop}/harness.tar.000`).replace('ssh://', 'sftp://'), '-o', join(out, 'harness.tar'), ...ssh()]);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(Buffer.concat(readdirSync(out).filter((f) => /\.\d{3}$/.test(f)).sort().map((f) => readFileSync(join(out, f)))), tar);
    const verified = await airlock(['verify', join(out, 'harness.tar.000'), '--key', join(work, 'airlock.pub')]);
    assert.equal(verified.code, 0, verified.stderr);
  });

  test('an interrupted upload resumes from the bytes already there', async () => {
    const drop = mkdtempSync(join(work, 'drop-'));
    // What an interrupted upload leaves: a prefix written, holes possible only in the last RESUME_WINDOW bytes.
    const written = RESUME_WINDOW + 2_000_000;
    writeFileSync(join(drop, 'harness.tar.partial'), Buffer.concat([tar.subarray(0, written - RESUME_WINDOW), Buffer.alloc(RESUME_WINDOW)]));
    const advances: number[] = [];
    await uploadSftp(bundle, sshd.url(`${drop}/`).replace('ssh://', 'sftp://'), { keyFile: sshd.clientKey, knownHosts: sshd.knownHosts }, { total: () => undefined, advance: (n) => advances.push(n) });
    assert.equal(advances[0], written - RESUME_WINDOW, 'the bytes known to be written are not sent again');
    assert.equal(advances.slice(1).reduce((a, n) => a + n, 0), tar.length - (written - RESUME_WINDOW));
    assert.deepEqual(readdirSync(drop), ['harness.tar']);
    assert.deepEqual(readFileSync(join(drop, 'harness.tar')), tar);
  });

  test('an unknown host key and a missing remote file are exit 4', async () => {
    const empty = join(work, 'known_hosts_empty');
    writeFileSync(empty, '');
    const unknown = await airlock(['upload', bundle, sshd.url('/tmp/').replace('ssh://', 'sftp://'), '--ssh-key', sshd.clientKey, '--known-hosts', empty]);
    assert.equal(unknown.code, 4, unknown.stderr);
    assert.ok(unknown.stderr.includes(sshd.hostKeyFingerprint), unknown.stderr);
    const missing = await airlock(['download', sshd.url(`${work}/nope.tar`).replace('ssh://', 'sftp://'), '-o', join(work, 'nope.tar'), ...ssh()]);
    assert.equal(missing.code, 4, missing.stderr);
    assert.match(missing.stderr, /does not exist/);
  });
});
