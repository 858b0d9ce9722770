import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { publicKeyPemOf, readPrivateKey, readPublicKey, signBlob, verifyBlob } from '../../shared/sign/keys.ts';
import { ExitCode, UsageError, VerificationError } from '../../shared/cli/errors.ts';

/**
 * Test vectors made by the real cosign tool and published in other projects'
 * repositories, copied byte for byte. test/fixtures/cosign/SOURCE.md says
 * where each file comes from, at which commit, and what its password is.
 */
const fixtureBytes = (path: string) => readFileSync(new URL(`../fixtures/cosign/${path}`, import.meta.url));
const fixture = (path: string) => fixtureBytes(path).toString('utf8');

const spkiDer = (key: KeyObject) =>
  (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' });

/** The decrypted private key's public half is the very key the project published next to it. */
function assertSamePublicKey(privateKey: KeyObject, publishedPem: string) {
  const published = readPublicKey(publishedPem, 'cosign.pub');
  assert.deepEqual(spkiDer(privateKey), spkiDer(published));
  // The PEM we would write for it is the text cosign wrote, byte for byte.
  assert.equal(publicKeyPemOf(privateKey), publishedPem);
}

const isUsage = (re: RegExp) => (err: unknown) => {
  assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
  assert.equal(err.exitCode, ExitCode.Usage);
  assert.match(err.message, re);
  return true;
};

const isVerification = (err: unknown) => {
  assert.ok(err instanceof VerificationError, `expected a VerificationError, got ${String(err)}`);
  assert.equal(err.exitCode, ExitCode.Verification);
  assert.match(err.message, /signature does not match/);
  return true;
};

function flipByte(data: Buffer, at: number): Buffer {
  const copy = Buffer.from(data);
  copy[at] = copy[at]! ^ 0x01;
  return copy;
}

/** openssl, not our code, checks a base64 ASN.1 DER ECDSA-P256-SHA256 signature. */
function opensslVerifies(data: Buffer, signatureB64: string, publicKeyPem: string): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-cosign-vector-'));
  try {
    writeFileSync(join(dir, 'key.pub'), publicKeyPem);
    writeFileSync(join(dir, 'blob'), data);
    writeFileSync(join(dir, 'blob.sig'), Buffer.from(signatureB64, 'base64'));
    const out = execFileSync(
      'openssl',
      ['dgst', '-sha256', '-verify', join(dir, 'key.pub'), '-signature', join(dir, 'blob.sig'), join(dir, 'blob')],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    return /Verified OK/.test(out);
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('tektoncd/chains test key: cosign generate-key-pair, password "p" published beside it', () => {
  const pem = fixture('tektoncd-chains/cosign.key');
  const publishedPub = fixture('tektoncd-chains/cosign.pub');
  const password = fixture('tektoncd-chains/cosign.password');

  test('the vector is what SOURCE.md says: legacy PEM label, scrypt N=32768, password "p"', () => {
    assert.equal(password, 'p');
    assert.match(pem, /^-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n/);
    const body = pem.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
    const env = JSON.parse(Buffer.from(body, 'base64').toString('utf8')) as { kdf: { params: object } };
    assert.deepEqual(env.kdf.params, { N: 32768, r: 8, p: 1 });
  });

  test('opens with its password, and its public half is the published cosign.pub', () => {
    const key = readPrivateKey(pem, password, 'chains/cosign.key');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assertSamePublicKey(key, publishedPub);
  });

  test('a wrong or an empty password is a UsageError (exit 2) that names the password', () => {
    assert.throws(() => readPrivateKey(pem, 'P', 'chains/cosign.key'), isUsage(/chains\/cosign\.key: wrong password/));
    assert.throws(() => readPrivateKey(pem, '', 'chains/cosign.key'), isUsage(/wrong password/));
  });

  test('a damaged envelope is a UsageError that does not blame the password', () => {
    const damaged = pem.replace('eyJrZGYi', 'eyJrZGfi'); // '{"kdf"' -> '{"kdg', no longer JSON
    assert.notEqual(damaged, pem);
    assert.throws(() => readPrivateKey(damaged, password, 'chains/cosign.key'), isUsage(/not valid JSON/));
  });

  test('our signBlob signature verifies with the published public key (ours and openssl), a flipped byte does not', () => {
    const key = readPrivateKey(pem, password, 'chains/cosign.key');
    const index = Buffer.from('{"airlockVersion":1,"name":"demo"}\n');
    const signature = signBlob(index, key);
    const pub = readPublicKey(publishedPub, 'chains/cosign.pub');
    verifyBlob(index, signature, pub, 'airlock.json');
    assert.equal(opensslVerifies(index, signature, publishedPub), true);
    assert.throws(() => verifyBlob(flipByte(index, 5), signature, pub, 'airlock.json'), isVerification);
    assert.equal(opensslVerifies(flipByte(index, 5), signature, publishedPub), false);
  });
});

describe('sigstore/policy-controller example key: empty password (its README says COSIGN_PASSWORD="")', () => {
  const pem = fixture('policy-controller/cosign.key');
  const publishedPub = fixture('policy-controller/cosign.pub');

  test('opens with the empty password, and its public half is the published cosign.pub', () => {
    assertSamePublicKey(readPrivateKey(pem, '', 'policy-controller/cosign.key'), publishedPub);
  });

  test('any other password is a UsageError (exit 2)', () => {
    assert.throws(() => readPrivateKey(pem, 'p', 'policy-controller/cosign.key'), isUsage(/wrong password/));
  });
});

describe('sigstore-rs "cosign generated" key: current label, scrypt N=65536, empty password', () => {
  const pem = fixture('sigstore-rs/cosign_generated_encrypted_empty_private.key');

  test('opens with the empty password to a P-256 key whose signatures openssl accepts', () => {
    assert.match(pem, /^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n/);
    const key = readPrivateKey(pem, '', 'sigstore-rs.key');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const data = Buffer.from('sigstore-rs vector');
    assert.equal(opensslVerifies(data, signBlob(data, key), publicKeyPemOf(key)), true);
  });

  test('a non-empty password is a UsageError (exit 2)', () => {
    assert.throws(() => readPrivateKey(pem, 'x', 'sigstore-rs.key'), isUsage(/wrong password/));
  });
});

describe("sigstore/cosign's own keys_test.go vectors (password \"hello\")", () => {
  test('pemsigstorekey (SIGSTORE label, N=32768) opens with "hello", not with "wrong"', () => {
    const pem = fixture('sigstore-cosign/pemsigstorekey.key');
    const key = readPrivateKey(pem, 'hello', 'pemsigstorekey');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.throws(() => readPrivateKey(pem, 'wrong', 'pemsigstorekey'), isUsage(/wrong password/));
  });

  test('pemcosigneckey (SEC1 inside, which cosign refuses too) is a UsageError (exit 2), not a crash', () => {
    const pem = fixture('sigstore-cosign/pemcosigneckey.key');
    // "hello" is right: the box opens, but what it holds is not PKCS#8.
    assert.throws(() => readPrivateKey(pem, 'hello', 'pemcosigneckey'), isUsage(/pemcosigneckey: the decrypted key is not a PKCS#8 private key/));
    assert.throws(() => readPrivateKey(pem, 'wrong', 'pemcosigneckey'), isUsage(/wrong password/));
  });
});

describe('containers/image fixture: a signature made by cosign with a key, and its cosign.pub', () => {
  // c/image's dir: transport stores a sigstore signature as "\0sigstore-json\n" + JSON with the
  // signed payload (base64) and cosign's signature annotation (base64 ASN.1 DER ECDSA-P256-SHA256).
  const raw = fixtureBytes('containers-image/signature-1');
  const prefix = Buffer.from('\0sigstore-json\n');
  assert.ok(raw.subarray(0, prefix.length).equals(prefix), 'signature-1 starts with the c/image sigstore-json header');
  const sig = JSON.parse(raw.subarray(prefix.length).toString('utf8')) as {
    mimeType: string;
    payload: string;
    annotations: Record<string, string>;
  };
  const payload = Buffer.from(sig.payload, 'base64');
  const signature = sig.annotations['dev.cosignproject.cosign/signature'] ?? '';
  const publishedPub = fixture('containers-image/cosign.pub');
  const pub = readPublicKey(publishedPub, 'containers-image/cosign.pub');

  test('the payload is the simple-signing JSON cosign writes', () => {
    assert.equal(sig.mimeType, 'application/vnd.dev.cosign.simplesigning.v1+json');
    assert.match(payload.toString('utf8'), /"type":"cosign container image signature"/);
    assert.ok(signature.length > 0);
  });

  test("cosign's published signature verifies with verifyBlob (and with openssl)", () => {
    verifyBlob(payload, signature, pub, 'signature-1 payload');
    assert.equal(opensslVerifies(payload, signature, publishedPub), true);
  });

  test('a flipped byte in the payload, or in the signature, fails with exit 3', () => {
    for (const at of [0, 100, payload.length - 1]) {
      assert.throws(() => verifyBlob(flipByte(payload, at), signature, pub, 'signature-1 payload'), isVerification);
    }
    const sigBytes = Buffer.from(signature, 'base64');
    const badSig = flipByte(sigBytes, sigBytes.length - 1).toString('base64');
    assert.throws(() => verifyBlob(payload, badSig, pub, 'signature-1 payload'), isVerification);
  });

  test("another cosign key's public half does not verify it (exit 3)", () => {
    const other = readPublicKey(fixture('tektoncd-chains/cosign.pub'), 'chains/cosign.pub');
    assert.throws(() => verifyBlob(payload, signature, other, 'signature-1 payload'), isVerification);
  });
});
