import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { certsDir, ClientCertificates, readCertsD } from '../../shared/registry/client-certs.ts';

const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n';

function dirWith(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'airlock-certs-d-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(root, name, '..'), { recursive: true });
    writeFileSync(join(root, name), text);
  }
  return root;
}

test("certs.d as Docker reads it: *.crt are CAs, NAME.cert goes with NAME.key", () => {
  const root = dirWith({ 'reg.enclave:5443/ca.crt': CERT, 'reg.enclave:5443/extra.crt': CERT, 'reg.enclave:5443/client.cert': CERT, 'reg.enclave:5443/client.key': KEY });
  try {
    const tls = readCertsD(join(root, 'reg.enclave:5443'))!;
    assert.equal(tls.ca.length, 2);
    assert.equal(tls.cert, CERT);
    assert.equal(tls.key, KEY);
    assert.equal(readCertsD(join(root, 'other')), undefined);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('certs.d: a certificate without its key, or a key without its certificate, is a usage error naming the file', () => {
  const root = dirWith({ 'a/client.cert': CERT, 'b/client.key': KEY, 'c/client.cert': 'not pem', 'c/client.key': KEY });
  try {
    assert.throws(() => readCertsD(join(root, 'a')), (e: Error & { exitCode: number }) => e.exitCode === 2 && /client\.cert: a client certificate without its key client\.key/.test(e.message));
    assert.throws(() => readCertsD(join(root, 'b')), /a client key without its certificate client\.cert/);
    assert.throws(() => readCertsD(join(root, 'c')), /holds no PEM certificate/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the flags go to the named registry only (default ports equal), certs.d to its own host; AIRLOCK_CERTS_D moves the directory', () => {
  const root = dirWith({ 'cert.pem': CERT, 'key.pem': KEY, 'd/other:5000/ca.crt': CERT });
  try {
    const certs = new ClientCertificates({ registryHost: 'reg.enclave:443', clientCert: join(root, 'cert.pem'), clientKey: join(root, 'key.pem'), certsDir: join(root, 'd') });
    assert.equal(certs.for('reg.enclave', true)?.cert, CERT);
    assert.equal(certs.for('reg.enclave', false), undefined, 'not to a host that is not the registry (a redirect, a token realm)');
    assert.equal(certs.for('s3.enclave', true), undefined);
    assert.deepEqual(certs.for('other:5000', true)?.ca, [CERT]);
    assert.equal(certs.for('other:5000', true)?.cert, undefined);
    const anyRegistry = new ClientCertificates({ clientCert: join(root, 'cert.pem'), clientKey: join(root, 'key.pem'), certsDir: join(root, 'none') });
    assert.equal(anyRegistry.for('pinned.enclave', true)?.cert, CERT);
    assert.throws(() => new ClientCertificates({ clientCert: join(root, 'cert.pem') }), /go together/);
    assert.equal(certsDir({ AIRLOCK_CERTS_D: '/x' }), '/x');
    assert.equal(certsDir({}), '/etc/docker/certs.d');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
