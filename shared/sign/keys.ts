import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, scrypt, scryptSync, sign, verify } from 'node:crypto';
import type { KeyObject, ScryptOptions } from 'node:crypto';
import nacl from 'tweetnacl';
import { UsageError, VerificationError } from '../cli/errors.ts';

/**
 * cosign-compatible keys (DESIGN.md §3): the private key is PKCS#8 EC P-256,
 * encrypted as cosign does it (go-securesystemslib encrypted.go): scrypt
 * derives a 32-byte key from the password, NaCl secretbox seals the DER, and
 * the JSON envelope sits in a PEM "ENCRYPTED SIGSTORE PRIVATE KEY" block.
 * Signatures are ECDSA P-256 over SHA-256, ASN.1 DER (cosign sign-blob).
 */

export const PRIVATE_KEY_LABEL = 'ENCRYPTED SIGSTORE PRIVATE KEY';
const LEGACY_LABEL = 'ENCRYPTED COSIGN PRIVATE KEY';
/** cosign's parameters; decryption accepts only N of 2^15, 2^16, 2^17 with r=8, p=1. */
const SCRYPT = { N: 65536, r: 8, p: 1 };
const ALLOWED_N = new Set([32768, 65536, 131072]);

interface Envelope {
  kdf: { name: string; params: { N: number; r: number; p: number }; salt: string };
  cipher: { name: string; nonce: string };
  ciphertext: string;
}

function deriveKey(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Buffer {
  return scryptSync(Buffer.from(password, 'utf8'), salt, 32, scryptOptions(params));
}

/** deriveKey off the main thread (libuv's pool): cosign's N = 2^16 costs a few hundred ms of CPU. */
function deriveKeyInBackground(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(Buffer.from(password, 'utf8'), salt, 32, scryptOptions(params), (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function scryptOptions(params: { N: number; r: number; p: number }): ScryptOptions {
  return { ...params, maxmem: 128 * params.N * params.r * params.p + 16 * 1024 * 1024 };
}

/** A new key pair: the encrypted private key PEM and the public key PEM (SPKI). */
export function generateKeyPair(password: string): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  const salt = randomBytes(32);
  const nonce = randomBytes(24);
  const sealed = nacl.secretbox(der, nonce, deriveKey(password, salt, SCRYPT));
  const envelope: Envelope = {
    kdf: { name: 'scrypt', params: SCRYPT, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(sealed).toString('base64'),
  };
  return {
    privateKeyPem: pem(PRIVATE_KEY_LABEL, Buffer.from(JSON.stringify(envelope))),
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

/** Decrypt a cosign private key (either PEM label). A wrong password is exit 2. */
export function readPrivateKey(pemText: string, password: string, source: string): KeyObject {
  const env = readEnvelope(pemText, source);
  return openEnvelope(env, deriveKey(password, Buffer.from(env.kdf.salt, 'base64'), env.kdf.params), source);
}

/**
 * readPrivateKey with the key derivation on libuv's pool, so that other work
 * runs meanwhile. A key that is not a cosign key fails at once (a UsageError
 * thrown by this call); a wrong password only when the promise settles.
 */
export function decryptPrivateKey(pemText: string, password: string, source: string): Promise<KeyObject> {
  const env = readEnvelope(pemText, source);
  return deriveKeyInBackground(password, Buffer.from(env.kdf.salt, 'base64'), env.kdf.params).then((key) => openEnvelope(env, key, source));
}

/** The encrypted key's envelope, checked: scrypt with cosign's parameters, NaCl secretbox. */
function readEnvelope(pemText: string, source: string): Envelope {
  const m = /-----BEGIN (ENCRYPTED SIGSTORE PRIVATE KEY|ENCRYPTED COSIGN PRIVATE KEY)-----([\s\S]*?)-----END \1-----/.exec(pemText);
  if (!m) {
    throw new UsageError(`${source}: not a cosign private key (no "${PRIVATE_KEY_LABEL}" or "${LEGACY_LABEL}" PEM block)`);
  }
  let env: Envelope;
  try {
    env = JSON.parse(Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64').toString('utf8')) as Envelope;
  } catch {
    throw new UsageError(`${source}: the encrypted key is not valid JSON`);
  }
  const { kdf, cipher } = env;
  if (kdf?.name !== 'scrypt' || cipher?.name !== 'nacl/secretbox') {
    throw new UsageError(`${source}: unsupported key encryption ${kdf?.name}/${cipher?.name}`);
  }
  const { N, r, p } = kdf.params ?? {};
  if (!ALLOWED_N.has(N) || r !== 8 || p !== 1) {
    throw new UsageError(`${source}: unsupported scrypt parameters N=${N} r=${r} p=${p}`);
  }
  return { ...env, kdf: { ...kdf, params: { N, r, p } } };
}

/** Open the sealed key with the derived key: a P-256 private key, or a UsageError (a wrong password among them). */
function openEnvelope(env: Envelope, key: Buffer, source: string): KeyObject {
  const opened = nacl.secretbox.open(Buffer.from(env.ciphertext, 'base64'), Buffer.from(env.cipher.nonce, 'base64'), key);
  if (!opened) {
    throw new UsageError(`${source}: wrong password for the private key`, {
      hint: 'set AIRLOCK_PASSWORD (or COSIGN_PASSWORD) to the password the key was made with',
    });
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: Buffer.from(opened), format: 'der', type: 'pkcs8' });
  } catch (err) {
    // The password was right but the sealed key is not PKCS#8 (cosign's own tests carry
    // one with a SEC1 "EC PRIVATE KEY" inside, which cosign refuses too): a bad key, not a bug.
    throw new UsageError(`${source}: the decrypted key is not a PKCS#8 private key (${(err as Error).message})`);
  }
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new UsageError(`${source}: airlock signs with ECDSA P-256 keys only`);
  }
  return privateKey;
}

export function readPublicKey(pemText: string, source: string): KeyObject {
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(pemText)) {
    throw new UsageError(`${source} is a private key; verifying takes the public key`, {
      hint: 'pass the .pub file made with it (airlock keygen writes airlock.pub next to airlock.key); the private key stays on the connected side',
    });
  }
  if (!/-----BEGIN PUBLIC KEY-----/.test(pemText)) {
    throw new UsageError(`${source}: not a public key (no "-----BEGIN PUBLIC KEY-----" block)`, {
      hint: 'pass the airlock.pub that airlock keygen (or cosign generate-key-pair: cosign.pub) wrote',
    });
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pemText);
  } catch (err) {
    throw new UsageError(`${source}: a damaged public key: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ec') throw new UsageError(`${source}: airlock verifies ECDSA P-256 keys only`);
  return key;
}

/** Base64 ASN.1 DER ECDSA signature over SHA-256(data), as cosign sign-blob writes it. */
export function signBlob(data: Buffer, privateKey: KeyObject): string {
  return sign('sha256', data, privateKey).toString('base64');
}

/** Throws VerificationError (exit 3) unless signatureB64 is a valid signature of data. */
export function verifyBlob(data: Buffer, signatureB64: string, publicKey: KeyObject, what: string): void {
  const sig = Buffer.from(signatureB64.trim(), 'base64');
  let ok = false;
  try {
    ok = sig.length > 0 && verify('sha256', data, publicKey, sig);
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new VerificationError(`${what}: the signature does not match this public key`, {
      hint: 'the bundle was changed after signing, or was signed with another key',
    });
  }
}

/**
 * A public key's fingerprint: "sha256:" and the hex SHA-256 of its DER
 * (SubjectPublicKeyInfo), which
 * `openssl pkey -pubin -in key.pub -outform DER | sha256sum` prints too.
 */
export function keyFingerprint(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return `sha256:${createHash('sha256').update(pub.export({ format: 'der', type: 'spki' })).digest('hex')}`;
}

export function publicKeyPemOf(privateKey: KeyObject): string {
  return createPublicKey(privateKey).export({ format: 'pem', type: 'spki' }).toString();
}

function pem(label: string, body: Buffer): string {
  const b64 = body.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
