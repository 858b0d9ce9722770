import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readPrivateKey, signBlob } from '../../shared/sign/keys.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

function airlock(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = { ...process.env, AIRLOCK_PASSWORD: undefined, COSIGN_PASSWORD: undefined, ...env };
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'airlock.ts', ...args], { cwd: root, env: clean, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr }),
    );
  });
}

test('airlock keygen writes a cosign-format key pair that signs what openssl verifies', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-keygen-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = await airlock(['keygen', '--out-dir', dir], { AIRLOCK_PASSWORD: 'correct horse' });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout + r.stderr, /correct horse/, 'the password is never printed');
  assert.equal(statSync(join(dir, 'airlock.key')).mode & 0o777, 0o600);
  const keyPem = readFileSync(join(dir, 'airlock.key'), 'utf8');
  assert.match(keyPem, /^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----/);

  const data = Buffer.from('{"airlockVersion":1}');
  writeFileSync(join(dir, 'airlock.json'), data);
  const sig = signBlob(data, readPrivateKey(keyPem, 'correct horse', 'airlock.key'));
  writeFileSync(join(dir, 'sig'), Buffer.from(sig, 'base64'));
  const out = execFileSync('openssl', ['dgst', '-sha256', '-verify', join(dir, 'airlock.pub'), '-signature', join(dir, 'sig'), join(dir, 'airlock.json')]);
  assert.match(out.toString(), /Verified OK/);

  // Never overwrites an existing key.
  const again = await airlock(['keygen', '--out-dir', dir], { AIRLOCK_PASSWORD: 'other' });
  assert.equal(again.code, 2);
  assert.match(again.stderr, /airlock.key already exists/);
  assert.equal(readFileSync(join(dir, 'airlock.key'), 'utf8'), keyPem);
});

test('COSIGN_PASSWORD works too; no password and no terminal is exit 2', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-keygen-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = await airlock(['keygen', '--out-dir', join(dir, 'a')], { COSIGN_PASSWORD: 'cosign pw' });
  assert.equal(r.code, 0, r.stderr);
  readPrivateKey(readFileSync(join(dir, 'a', 'airlock.key'), 'utf8'), 'cosign pw', 'airlock.key');
  const none = await airlock(['keygen', '--out-dir', join(dir, 'b')], {});
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no password for the signing key/);
  assert.match(none.stderr, /AIRLOCK_PASSWORD/);
});
