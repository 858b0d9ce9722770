import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decryptPrivateKey,
  generateKeyPair,
  keyFingerprint,
  readPrivateKey,
  readPublicKey,
  signBlob,
  verifyBlob,
} from '../../shared/sign/keys.ts';

test('the legacy ENCRYPTED COSIGN PRIVATE KEY label is read too', () => {
  const { privateKeyPem } = generateKeyPair('pw');
  const legacy = privateKeyPem.replaceAll('ENCRYPTED SIGSTORE PRIVATE KEY', 'ENCRYPTED COSIGN PRIVATE KEY');
  assert.ok(readPrivateKey(legacy, 'pw', 'legacy.key'));
  assert.throws(() => readPrivateKey(legacy, 'wrong', 'legacy.key'), (err: Error & { exitCode?: number }) => {
    assert.equal(err.exitCode, 2);
    assert.match(err.message, /legacy.key: wrong password/);
    return true;
  });
});

test('generated keys: cosign envelope, round trip, openssl verifies the signature (DESIGN §2)', () => {
  const { privateKeyPem, publicKeyPem } = generateKeyPair('s3cret');
  assert.match(privateKeyPem, /^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n/);
  const body = privateKeyPem.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
  const env = JSON.parse(Buffer.from(body, 'base64').toString()) as {
    kdf: { name: string; params: object; salt: string };
    cipher: { name: string; nonce: string };
  };
  assert.deepEqual(env.kdf.params, { N: 65536, r: 8, p: 1 });
  assert.equal(env.kdf.name, 'scrypt');
  assert.equal(env.cipher.name, 'nacl/secretbox');
  assert.equal(Buffer.from(env.kdf.salt, 'base64').length, 32);
  assert.equal(Buffer.from(env.cipher.nonce, 'base64').length, 24);

  const key = readPrivateKey(privateKeyPem, 's3cret', 'airlock.key');
  const data = Buffer.from('{"airlockVersion":1}');
  const sig = signBlob(data, key);
  verifyBlob(data, sig, readPublicKey(publicKeyPem, 'airlock.pub'), 'airlock.json');

  const dir = mkdtempSync(join(tmpdir(), 'airlock-keys-'));
  try {
    writeFileSync(join(dir, 'airlock.pub'), publicKeyPem);
    writeFileSync(join(dir, 'airlock.json'), data);
    writeFileSync(join(dir, 'sig.der'), Buffer.from(sig, 'base64'));
    const out = execFileSync('openssl', [
      'dgst', '-sha256', '-verify', join(dir, 'airlock.pub'), '-signature', join(dir, 'sig.der'), join(dir, 'airlock.json'),
    ]).toString();
    assert.match(out, /Verified OK/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a changed blob, another key or a garbage signature fail with exit 3', () => {
  const a = generateKeyPair('x');
  const b = generateKeyPair('x');
  const key = readPrivateKey(a.privateKeyPem, 'x', 'a.key');
  const data = Buffer.from('index');
  const sig = signBlob(data, key);
  const check = (fn: () => void) =>
    assert.throws(fn, (err: Error & { exitCode?: number }) => err.exitCode === 3 && /signature does not match/.test(err.message));
  check(() => verifyBlob(Buffer.from('indeX'), sig, readPublicKey(a.publicKeyPem, 'a.pub'), 'airlock.json'));
  check(() => verifyBlob(data, sig, readPublicKey(b.publicKeyPem, 'b.pub'), 'airlock.json'));
  check(() => verifyBlob(data, 'bm90IGEgc2ln', readPublicKey(a.publicKeyPem, 'a.pub'), 'airlock.json'));
  check(() => verifyBlob(data, '', readPublicKey(a.publicKeyPem, 'a.pub'), 'airlock.json'));
});

test('not a key: clear usage errors', () => {
  assert.throws(() => readPrivateKey('hello', '', 'x.key'), /x.key: not a cosign private key/);
  assert.throws(() => readPublicKey('hello', 'x.pub'), /x.pub: not a public key/);
});

test('decryptPrivateKey derives off the main thread: the same key as readPrivateKey; a wrong password rejects (exit 2), not a key throws at once', async () => {
  const { privateKeyPem } = generateKeyPair('pw');
  const pending = decryptPrivateKey(privateKeyPem, 'pw', 'a.key');
  // The main thread is free while scrypt runs: a timer set after the call fires before the key is ready.
  const order: string[] = [];
  await Promise.all([pending.then(() => order.push('key')), new Promise((r) => setImmediate(r)).then(() => order.push('timer'))]);
  assert.deepEqual(order, ['timer', 'key']);
  assert.equal(keyFingerprint(await pending), keyFingerprint(readPrivateKey(privateKeyPem, 'pw', 'a.key')));
  await assert.rejects(decryptPrivateKey(privateKeyPem, 'wrong', 'a.key'), (err: Error & { exitCode?: number }) => {
    assert.equal(err.exitCode, 2);
    assert.match(err.message, /a\.key: wrong password/);
    return true;
  });
  assert.throws(() => decryptPrivateKey('-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n', 'pw', 'b.key'), /b\.key: not a cosign private key/);
});
