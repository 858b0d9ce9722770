import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { RegistryClient } from '../../shared/registry/client.ts';
import { HttpTransport } from '../../shared/registry/transport.ts';
import { airlock, type CliResult } from '../helpers/cli.ts';
import { packedWorld, type PackedWorld } from '../helpers/packed-world.ts';
import { createTestCA, type TestCA } from '../services/ca.ts';
import type { SyntheticImage } from '../services/fixtures.ts';
import { startMutualTlsFront, type NginxService } from '../services/nginx.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';

/**
 * An enclave registry behind mutual TLS: a real nginx with
 * `ssl_verify_client on` in front of a real Docker distribution
 * (startMutualTlsFront). airlock presents a certificate given
 * with --client-cert / --client-key, or found where Docker looks
 * (certs.d/HOST:PORT/client.cert and client.key; AIRLOCK_CERTS_D moves it).
 */
describe('registries behind mutual TLS', () => {
  let world: PackedWorld;
  let enclave: RegistryService;
  let front: NginxService;
  let ca: TestCA;
  let client: { cert: string; key: string };
  let work: string;
  let bundle: string;
  let images: SyntheticImage[];

  before(async () => {
    world = await packedWorld({
      name: 'mtls',
      password: 'mtls test',
      images: { seed: 5, images: [{ repository: 'harness/gateway', tag: '2.0', layers: 2, layerSize: 20_000 }] },
      spec: 'name: demo\nversion: 1.0.0\nimages:\n  - harness/gateway:2.0\n',
      bundleName: 'demo.tar',
    });
    ({ work, bundle, images } = world);
    enclave = await startRegistry();
    ca = await createTestCA(join(work, 'pki'));
    client = await ca.issue('enclave-loader', [], { client: true });
    mkdirSync(join(work, 'www'));
    front = await startMutualTlsFront({ root: join(work, 'www'), ca, upstreamPort: enclave.port });
  });

  after(async () => {
    await front?.stop();
    await enclave?.stop();
    await world?.stop();
  });

  const load = (registry: string, extra: string[], env: Record<string, string> = {}): Promise<CliResult> =>
    airlock(['load', bundle, '--key', world.pub, '--registry', registry, ...extra], { env: { AIRLOCK_CERTS_D: join(work, 'no-certs.d'), ...env } });

  async function digestIn(repository: string): Promise<string | undefined> {
    const transport = new HttpTransport({ proxy: {} });
    try {
      return (await new RegistryClient(enclave.host, transport, { plainHttp: true }).resolve(repository, '2.0'))?.digest;
    } finally {
      await transport.close();
    }
  }

  test('without a client certificate: exit 4 naming mutual TLS and what to pass', async () => {
    const res = await load(front.host, ['--ca-file', ca.caCert]);
    assert.equal(res.code, 4, res.stderr);
    assert.match(res.stderr, /client certificate \(mutual TLS\)/);
    assert.match(res.stderr, /--client-cert/);
    assert.match(res.stderr, /certs\.d/);
    assert.equal(await digestIn('harness/gateway'), undefined);
  });

  test('--client-cert / --client-key: the load succeeds', async () => {
    const res = await load(front.host, ['--ca-file', ca.caCert, '--client-cert', client.cert, '--client-key', client.key]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(await digestIn('harness/gateway'), images[0]!.digest);
    const half = await load(front.host, ['--ca-file', ca.caCert, '--client-cert', client.cert]);
    assert.equal(half.code, 2, half.stderr);
  });

  test("Docker's certs.d/HOST:PORT (client.cert, client.key, ca.crt) under AIRLOCK_CERTS_D: the load succeeds without flags", async () => {
    const certsD = join(work, 'certs.d');
    const dir = join(certsD, front.host);
    mkdirSync(dir, { recursive: true });
    copyFileSync(client.cert, join(dir, 'client.cert'));
    copyFileSync(client.key, join(dir, 'client.key'));
    copyFileSync(ca.caCert, join(dir, 'ca.crt'));
    const res = await load(`${front.host}/via-certs-d`, [], { AIRLOCK_CERTS_D: certsD });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(await digestIn('via-certs-d/harness/gateway'), images[0]!.digest);
  });
});
