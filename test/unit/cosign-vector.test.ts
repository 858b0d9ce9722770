import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publicKeyPemOf, readPrivateKey, readPublicKey, signBlob, verifyBlob } from '../../shared/sign/keys.ts';

/** Keys made by the real cosign tool (test/fixtures/cosign/SOURCE.md says where from). */
const fixture = (name: string) => readFileSync(new URL(`../fixtures/cosign/${name}`, import.meta.url), 'utf8');
const exit2 = (re: RegExp) => (e: Error & { exitCode?: number }) => e.exitCode === 2 && re.test(e.message);

test('a key from cosign generate-key-pair (empty password) opens, and its signatures verify with openssl', (t) => {
  const pem = fixture('cosign_generated_encrypted_empty_private.key');
  const key = readPrivateKey(pem, '', 'cosign.key');
  const publicPem = publicKeyPemOf(key);
  assert.match(publicPem, /^-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEGmsWpZNuu\+SUX70n3lVK4JLsaoV7\n/);
  assert.throws(() => readPrivateKey(pem, 'not the password', 'cosign.key'), exit2(/password/i));

  const dir = mkdtempSync(join(tmpdir(), 'airlock-cosign-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const index = Buffer.from('{"airlockVersion":1,"name":"demo"}\n');
  const signature = signBlob(index, key);
  writeFileSync(join(dir, 'airlock.json'), index);
  writeFileSync(join(dir, 'sig.der'), Buffer.from(signature, 'base64'));
  writeFileSync(join(dir, 'cosign.pub'), publicPem);
  const out = execFileSync('openssl', ['dgst', '-sha256', '-verify', join(dir, 'cosign.pub'), '-signature', join(dir, 'sig.der'), join(dir, 'airlock.json')], { encoding: 'utf8' });
  assert.match(out, /Verified OK/);
  verifyBlob(index, signature, readPublicKey(publicPem, 'cosign.pub'), 'airlock.json');
  assert.throws(() => verifyBlob(Buffer.from('{"airlockVersion":1,"name":"demo!"}\n'), signature, readPublicKey(publicPem, 'cosign.pub'), 'airlock.json'), (e: Error & { exitCode?: number }) => e.exitCode === 3);
});

test('a legacy "ENCRYPTED COSIGN PRIVATE KEY" (scrypt N=32768) parses; a wrong password is named as such', () => {
  const pem = fixture('cosign-test.key');
  assert.throws(() => readPrivateKey(pem, 'wrong', 'cosign-test.key'), exit2(/password/i));
  assert.throws(() => readPrivateKey(pem.replace('eyJrZGYi', 'eyJrZGfi'), 'wrong', 'cosign-test.key'), (e: Error & { exitCode?: number }) => e.exitCode === 2 && !/password/i.test(e.message));
});
