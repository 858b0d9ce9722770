import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { BundleIndex } from '../../shared/bundle/format.ts';
import type { Descriptor } from '../../shared/oci/descriptor.ts';
import { RegistryClient } from '../../shared/registry/client.ts';
import { HttpTransport } from '../../shared/registry/transport.ts';
import { signImage } from '../../shared/sign/cosignImage.ts';
import { generateKeyPair, readPrivateKey } from '../../shared/sign/keys.ts';
import { airlock } from '../helpers/cli.ts';
import { run } from '../services/exec.ts';
import { generateImages, pushImages, type SyntheticImage } from '../services/fixtures.ts';
import { startQuirkProxy } from '../services/quirkProxy.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { skopeoFlags } from '../services/skopeo.ts';

/**
 * pack --with-signatures and load, against docker-registry 2.8 (no referrers
 * API) as source and enclave. The source image, a two-platform index, carries
 * what signers leave in a registry: cosign .sig tags (made by our cosign-style
 * signer: no real cosign-signed image layout was found to use offline) for
 * the index and for its amd64 manifest, a cosign .att attestation, and an
 * OCI 1.1 referrer (a sigstore-bundle artifact whose subject is the index),
 * listed in the sha256-<hex> fallback index as docker-registry 2.8 needs.
 * skopeo reads the result; openssl checks the signature.
 */
const PASSWORD = 'signatures test';
const SIGSTORE_BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const tagOf = (digest: string, suffix = '') => `${digest.replace(':', '-')}${suffix}`;

describe('pack --with-signatures, load', () => {
  let source: RegistryService;
  let enclave: RegistryService;
  let work: string;
  let signed: SyntheticImage;
  let transport: HttpTransport;
  /** Manifest digests in the source, by what they are. */
  const made: Record<'indexSig' | 'amd64Sig' | 'att' | 'referrer', string> = { indexSig: '', amd64Sig: '', att: '', referrer: '' };
  const bundle = () => join(work, 'bundle.tar');
  const env = { AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-signatures-'));
    [source, enclave] = await Promise.all([startRegistry(), startRegistry()]);
    const images = await generateImages({
      seed: 41,
      images: [
        { repository: 'harness/signed', tag: '1.0', layers: 1, layerSize: 8_000, platforms: ['linux/amd64', 'linux/arm64'] },
        { repository: 'library/plain', tag: '2.0', layers: 1, layerSize: 8_000 },
      ],
    });
    await pushImages(source.url, images);
    signed = images[0]!;
    for (const name of ['airlock', 'signer']) {
      const pair = generateKeyPair(PASSWORD);
      writeFileSync(join(work, `${name}.key`), pair.privateKeyPem);
      writeFileSync(join(work, `${name}.pub`), pair.publicKeyPem);
    }
    transport = new HttpTransport({});
    const client = new RegistryClient(source.host, transport, { plainHttp: true });
    const key = readPrivateKey(readFileSync(join(work, 'signer.key'), 'utf8'), PASSWORD, 'signer.key');
    const amd64 = signed.children!.find((c) => c.platform.architecture === 'amd64')!;
    made.indexSig = (await signImage(client, 'harness/signed', signed.digest, key)).manifest;
    made.amd64Sig = (await signImage(client, 'harness/signed', amd64.digest, key)).manifest;
    made.att = await pushAttestation(client, signed.digest);
    made.referrer = await pushReferrer(client, { mediaType: OCI_INDEX, digest: signed.digest, size: signed.size });
    writeFileSync(join(work, 'airlock.yaml'), 'name: signed\nversion: 1.0.0\nimages:\n  - harness/signed:1.0\n  - library/plain:2.0\n');
  });

  after(async () => {
    await transport?.close();
    await Promise.all([source?.stop(), enclave?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  const pack = (output: string, extra: string[]) =>
    airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', output, '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${source.url}`, ...extra], { env });
  const load = (registry: RegistryService, extra: string[] = []) =>
    airlock(['load', bundle(), '--key', join(work, 'airlock.pub'), '--registry', registry.host, '--plain-http', '--json', ...extra], { env });
  const raw = async (reg: RegistryService, ref: string): Promise<Buffer | undefined> => {
    const r = await run('skopeo', ['inspect', '--raw', ...skopeoFlags(reg), `docker://${reg.host}/${ref}`], { allowFail: true });
    if (r.code !== 0) return undefined;
    return Buffer.from(r.stdout);
  };

  test('pack carries the .sig tags of the index and of a platform manifest, the .att and the referrer, each listed in the signed index and named in the layout', async () => {
    const res = await pack(bundle(), ['--with-signatures']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /signatures\s+4 manifests for 1 of 2 images/);
    assert.equal((await airlock(['verify', bundle(), '--key', join(work, 'airlock.pub')])).code, 0);
    assert.match((await airlock(['inspect', bundle()])).stdout, /docker\.io\/harness\/signed:1\.0 .*signatures: 2 sig, 1 att, 1 referrer\n/);

    const dir = mkdtempSync(join(work, 'x-'));
    await run('tar', ['-xf', bundle(), '-C', dir]);
    const index = JSON.parse(readFileSync(join(dir, 'airlock.json'), 'utf8')) as BundleIndex;
    const image = index.images.find((i) => i.ref === 'docker.io/harness/signed:1.0')!;
    const amd64 = signed.children!.find((c) => c.platform.architecture === 'amd64')!;
    assert.deepEqual(
      image.signatures!.map((s) => [s.kind, s.subject, s.tag, s.digest]).sort(),
      [
        ['att', signed.digest, tagOf(signed.digest, '.att'), made.att],
        ['referrer', signed.digest, undefined, made.referrer],
        ['sig', amd64.digest, tagOf(amd64.digest, '.sig'), made.amd64Sig],
        ['sig', signed.digest, tagOf(signed.digest, '.sig'), made.indexSig],
      ].sort(),
    );
    assert.equal(image.signatures!.find((s) => s.kind === 'referrer')!.artifactType, SIGSTORE_BUNDLE);
    assert.equal(index.images.find((i) => i.ref === 'docker.io/library/plain:2.0')!.signatures, undefined, 'an image without signatures lists none');
    // Byte for byte in the layout, and the layout valid for an outside reader.
    for (const digest of Object.values(made)) assert.equal(sha256(readFileSync(join(dir, 'oci/blobs/sha256', digest.slice(7)))), digest);
    const viaSkopeo = await run('skopeo', ['inspect', '--raw', `oci:${join(dir, 'oci')}:docker.io/harness/signed:${tagOf(signed.digest, '.sig')}`]);
    assert.equal(sha256(viaSkopeo.stdout), made.indexSig);
    const layout = JSON.parse(readFileSync(join(dir, 'oci/index.json'), 'utf8')) as { manifests: Descriptor[] };
    assert.ok(layout.manifests.some((m) => m.digest === made.referrer && m.annotations === undefined), 'the referrer is listed unnamed in oci/index.json');
  });

  test('load pushes them next to the image with their digests; the referrer gets the fallback index; openssl verifies the signature; a second load writes nothing', async () => {
    const first = await load(enclave);
    assert.equal(first.code, 0, first.stderr);
    const report = JSON.parse(first.stdout.trim().split('\n').pop()!) as { images: unknown[]; signatures: { pushed: number; present: number; fallbackIndexes: number; referrersApi: boolean } };
    assert.equal(report.images.length, 2, 'signatures are not images of the release');
    assert.deepEqual({ ...report.signatures, kept: undefined }, { images: 1, manifests: 4, pushed: 4, present: 0, kept: undefined, fallbackIndexes: 1, referrersApi: false });

    const amd64 = signed.children!.find((c) => c.platform.architecture === 'amd64')!;
    for (const [tag, digest] of [
      [tagOf(signed.digest, '.sig'), made.indexSig],
      [tagOf(amd64.digest, '.sig'), made.amd64Sig],
      [tagOf(signed.digest, '.att'), made.att],
    ] as const) {
      const bytes = await raw(enclave, `harness/signed:${tag}`);
      assert.ok(bytes, `${tag} is in the enclave`);
      assert.equal(sha256(bytes), digest, tag);
    }
    const referrer = await raw(enclave, `harness/signed@${made.referrer}`);
    assert.ok(referrer && sha256(referrer) === made.referrer, 'the referrer is there by digest');
    const fallback = JSON.parse((await raw(enclave, `harness/signed:${tagOf(signed.digest)}`))!.toString('utf8')) as { mediaType: string; manifests: Descriptor[] };
    assert.equal(fallback.mediaType, OCI_INDEX);
    assert.deepEqual(
      fallback.manifests.map((m) => [m.digest, m.artifactType]),
      [[made.referrer, SIGSTORE_BUNDLE]],
    );

    // The signature, checked by openssl over the payload blob as the enclave serves it.
    const sig = JSON.parse((await raw(enclave, `harness/signed:${tagOf(signed.digest, '.sig')}`))!.toString('utf8')) as { layers: Descriptor[] };
    const layer = sig.layers[0]!;
    const payload = Buffer.from(await (await fetch(`${enclave.url}/v2/harness/signed/blobs/${layer.digest}`)).arrayBuffer());
    writeFileSync(join(work, 'payload'), payload);
    writeFileSync(join(work, 'payload.sig'), Buffer.from(layer.annotations!['dev.cosignproject.cosign/signature']!, 'base64'));
    const v = await run('openssl', ['dgst', '-sha256', '-verify', join(work, 'signer.pub'), '-signature', join(work, 'payload.sig'), join(work, 'payload')], { allowFail: true });
    assert.equal(v.stdout.trim(), 'Verified OK', v.stdout + v.stderr);
    assert.equal((JSON.parse(payload.toString('utf8')) as { critical: { image: Record<string, string> } }).critical.image['docker-manifest-digest'], signed.digest);

    // Again: everything present, no manifest or tag written.
    const putsBefore = (await enclave.requests(/^PUT /)).length;
    const second = await load(enclave);
    assert.equal(second.code, 0, second.stderr);
    const again = JSON.parse(second.stdout.trim().split('\n').pop()!) as { signatures: { pushed: number; present: number; fallbackIndexes: number } };
    assert.deepEqual([again.signatures.pushed, again.signatures.present, again.signatures.fallbackIndexes], [0, 4, 0]);
    assert.deepEqual((await enclave.requests(/^PUT /)).slice(putsBefore), []);
  });

  test('signed again in the enclave (approve adds a layer to the .sig manifest): a reload leaves it; a .sig tag replaced by other content is left and named; --dry-run writes nothing', async () => {
    const enclaveClient = new RegistryClient(enclave.host, transport, { plainHttp: true });
    const approver = readPrivateKey(readFileSync(join(work, 'signer.key'), 'utf8'), PASSWORD, 'signer.key');
    const approved = await signImage(enclaveClient, 'harness/signed', signed.digest, approver);
    assert.equal(approved.signatures, 2, 'the approver signature joined the packed one');
    const reload = await load(enclave);
    assert.equal(reload.code, 0, reload.stderr);
    assert.deepEqual((JSON.parse(reload.stdout.trim().split('\n').pop()!) as { signatures: { kept: string[] } }).signatures.kept, []);
    assert.equal(sha256((await raw(enclave, `harness/signed:${tagOf(signed.digest, '.sig')}`))!), approved.manifest, 'the enclave signature stays');

    // Another .sig manifest in its place (none of the bundle's layers): left, and named.
    const amd64 = signed.children!.find((c) => c.platform.architecture === 'amd64')!;
    const other = await signImage(new RegistryClient(enclave.host, transport, { plainHttp: true }), 'library/plain', amd64.digest, approver);
    const otherBytes = (await enclaveClient.getManifest('library/plain', other.manifest))!.bytes;
    for (const l of (JSON.parse(otherBytes.toString('utf8')) as { config: Descriptor; layers: Descriptor[] }).layers.concat([(JSON.parse(otherBytes.toString('utf8')) as { config: Descriptor }).config])) {
      assert.ok(await enclaveClient.mountBlob('harness/signed', l, 'library/plain'), 'mounted');
    }
    await enclaveClient.putManifest('harness/signed', tagOf(amd64.digest, '.sig'), OCI_MANIFEST, otherBytes);
    const kept = await load(enclave);
    assert.equal(kept.code, 0, kept.stderr);
    const report = JSON.parse(kept.stdout.trim().split('\n').pop()!) as { signatures: { kept: string[] } };
    assert.deepEqual(report.signatures.kept, [`${enclave.host}/harness/signed:${tagOf(amd64.digest, '.sig')}`]);
    assert.match(kept.stdout + kept.stderr, /left as it is/);
    assert.equal(sha256((await raw(enclave, `harness/signed:${tagOf(amd64.digest, '.sig')}`))!), other.manifest);

    const empty = await startRegistry();
    try {
      const dry = await load(empty, ['--dry-run']);
      assert.equal(dry.code, 0, dry.stderr);
      assert.deepEqual((JSON.parse(dry.stdout.trim().split('\n').pop()!) as { signatures: { pushed: number } }).signatures.pushed, 4);
      assert.deepEqual(await empty.requests(/^(PUT|POST|PATCH) /), []);
    } finally {
      await empty.stop();
    }
  });

  test('registries with the referrers API (docker-registry behind a front end that answers it): pack lists referrers through it, load lets the registry index them and writes no fallback index', async () => {
    // The source answers the API for the image index, listing the referrer; its fallback tag is hidden, so only the API can find it.
    const listed = JSON.parse((await raw(source, `harness/signed:${tagOf(signed.digest)}`))!.toString('utf8')) as { manifests: Descriptor[] };
    const referrersOf = (digest: string) => JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: digest === signed.digest ? listed.manifests : [] });
    const apiSource = await startQuirkProxy({ host: '127.0.0.1', port: source.port });
    apiSource.add({ name: 'referrers API', method: 'GET', path: /^\/v2\/.+\/referrers\/sha256:[a-f0-9]{64}$/, answer: (req) => ({ status: 200, headers: { 'content-type': OCI_INDEX }, body: referrersOf(req.url.split('/').pop()!) }) });
    apiSource.add({ name: 'no fallback tag', path: /\/manifests\/sha256-[a-f0-9]{64}$/, answer: () => ({ status: 404, headers: { 'content-type': 'application/json' }, body: '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}' }) });
    const apiEnclave = await startRegistry();
    const front = await startQuirkProxy({ host: '127.0.0.1', port: apiEnclave.port });
    front.add({ name: 'referrers API', method: 'GET', path: /\/referrers\//, answer: () => ({ status: 200, headers: { 'content-type': OCI_INDEX }, body: JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }) }) });
    try {
      const viaApi = join(work, 'via-api.tar');
      const packed = await airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', viaApi, '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${apiSource.url}`, '--with-signatures'], { env });
      assert.equal(packed.code, 0, packed.stderr);
      assert.ok(apiSource.log.some((l) => l.rule === 'referrers API' && l.url.endsWith(signed.digest)), 'the API was asked');
      await run('tar', ['-xf', viaApi, '-C', work, 'airlock.json']);
      const index = JSON.parse(readFileSync(join(work, 'airlock.json'), 'utf8')) as BundleIndex;
      const referrer = index.images.find((i) => i.ref === 'docker.io/harness/signed:1.0')!.signatures!.find((s) => s.kind === 'referrer')!;
      assert.equal(referrer.digest, made.referrer);

      const loaded = await airlock(['load', viaApi, '--key', join(work, 'airlock.pub'), '--registry', front.host, '--plain-http', '--json'], { env });
      assert.equal(loaded.code, 0, loaded.stderr);
      const report = JSON.parse(loaded.stdout.trim().split('\n').pop()!) as { signatures: { referrersApi: boolean; fallbackIndexes: number; pushed: number } };
      assert.deepEqual([report.signatures.referrersApi, report.signatures.fallbackIndexes, report.signatures.pushed], [true, 0, 4]);
      const pushed = await raw(apiEnclave, `harness/signed@${made.referrer}`);
      assert.ok(pushed && sha256(pushed) === made.referrer, 'the referrer manifest, subject and all, is there by digest');
      assert.equal(await raw(apiEnclave, `harness/signed:${tagOf(signed.digest)}`), undefined, 'no fallback index where the registry has the API');
    } finally {
      await Promise.all([apiSource.stop(), front.stop(), apiEnclave.stop()]);
    }
  });

  test('without --with-signatures the bundle carries none', async () => {
    const plain = join(work, 'plain.tar');
    const res = await pack(plain, []);
    assert.equal(res.code, 0, res.stderr);
    assert.doesNotMatch(res.stdout, /^\s+signatures/m);
    const dir = mkdtempSync(join(work, 'p-'));
    await run('tar', ['-xf', plain, '-C', dir]);
    assert.ok(!readFileSync(join(dir, 'airlock.json'), 'utf8').includes('"signatures"'));
    const layout = JSON.parse(readFileSync(join(dir, 'oci/index.json'), 'utf8')) as { manifests: Descriptor[] };
    assert.deepEqual(layout.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']), ['docker.io/harness/signed:1.0', 'docker.io/library/plain:2.0']);
  });
});

/** A cosign-style attestation: a DSSE envelope layer with its predicateType, tagged sha256-<hex>.att. */
async function pushAttestation(client: RegistryClient, subject: string): Promise<string> {
  const statement = { _type: 'https://in-toto.io/Statement/v0.1', predicateType: 'https://slsa.dev/provenance/v0.2', subject: [{ name: 'harness/signed', digest: { sha256: subject.slice(7) } }], predicate: {} };
  const envelope = Buffer.from(JSON.stringify({ payloadType: 'application/vnd.in-toto+json', payload: Buffer.from(JSON.stringify(statement)).toString('base64'), signatures: [{ keyid: '', sig: 'MEUCIQ==' }] }));
  const layer = await pushBlob(client, envelope, 'application/vnd.dsse.envelope.v1+json', { predicateType: statement.predicateType });
  const config = await pushBlob(client, Buffer.from(JSON.stringify({ architecture: '', os: '', rootfs: { type: 'layers', diff_ids: [layer.digest] }, config: {} })), 'application/vnd.oci.image.config.v1+json');
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [layer] }));
  return client.putManifest('harness/signed', tagOf(subject, '.att'), OCI_MANIFEST, manifest);
}

/** An OCI 1.1 referrer (cosign 3's sigstore bundle shape) with its subject, and the fallback index listing it. */
async function pushReferrer(client: RegistryClient, subject: Descriptor): Promise<string> {
  const empty = await pushBlob(client, Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');
  const layer = await pushBlob(client, Buffer.from(JSON.stringify({ mediaType: SIGSTORE_BUNDLE, dsseEnvelope: {} })), SIGSTORE_BUNDLE);
  const annotations = { 'dev.sigstore.bundle.content': 'dsse-envelope', 'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1' };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: SIGSTORE_BUNDLE, config: empty, layers: [layer], subject, annotations }));
  const digest = await client.putManifest('harness/signed', sha256(manifest), OCI_MANIFEST, manifest);
  const fallback = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest, size: manifest.length, artifactType: SIGSTORE_BUNDLE, annotations }] };
  await client.putManifest('harness/signed', tagOf(subject.digest), OCI_INDEX, Buffer.from(JSON.stringify(fallback)));
  return digest;
}

async function pushBlob(client: RegistryClient, bytes: Buffer, mediaType: string, annotations?: Record<string, string>): Promise<Descriptor> {
  const desc: Descriptor = { mediaType, digest: sha256(bytes), size: bytes.length, ...(annotations ? { annotations } : {}) };
  await client.pushBlob('harness/signed', desc, Readable.from([bytes]));
  return desc;
}

