import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { execFileSync } from 'node:child_process';
import { BundleWriter, type BundleContent } from '../../shared/bundle/writer.ts';
import { readBundle } from '../../shared/bundle/reader.ts';
import type { Descriptor } from '../../shared/oci/descriptor.ts';
import { VerifyingStream } from '../../shared/oci/digest.ts';
import { generateKeyPair, readPrivateKey, readPublicKey, signBlob } from '../../shared/sign/keys.ts';

const pair = generateKeyPair('pw');
const privateKey = readPrivateKey(pair.privateKeyPem, 'pw', 'test key');
const publicKey = readPublicKey(pair.publicKeyPem, 'test pub');
const sign = (b: Buffer): string => signBlob(b, privateKey);

function blob(bytes: Buffer, mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip'): { desc: Descriptor; bytes: Buffer } {
  return { desc: { mediaType, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length }, bytes };
}

/** The verifying stream a real source would hand to push(). */
function body(b: { desc: Descriptor; bytes: Buffer }, bytes = b.bytes): Readable {
  return Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]).pipe(new VerifyingStream(b.desc, 'test'));
}

function fixture(dir: string) {
  const layer = blob(Buffer.alloc(70_000, 7));
  const config = blob(Buffer.from('{"os":"linux","architecture":"amd64"}'), 'application/vnd.oci.image.config.v1+json');
  const manifest = blob(
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: config.desc, layers: [layer.desc] })),
    'application/vnd.oci.image.manifest.v1+json',
  );
  const yaml = Buffer.from('kind: Namespace\nmetadata: { name: x }\n');
  const longName = `manifests/${'deep/'.repeat(25)}app.yaml`;
  writeFileSync(join(dir, 'app.yaml'), yaml);
  const content: BundleContent = {
    name: 'demo',
    version: '1.0.0',
    created: new Date('2026-11-24T12:00:00Z'),
    platforms: ['linux/amd64'],
    images: [{ ref: 'docker.io/harness/app:1', digest: manifest.desc.digest, mediaType: manifest.desc.mediaType }],
    charts: [],
    files: [{ path: longName, size: yaml.length, sha256: createHash('sha256').update(yaml).digest('hex'), file: join(dir, 'app.yaml') }],
    blobs: [layer.desc, config.desc],
    manifests: [manifest.desc],
    refs: [{ ref: 'docker.io/harness/app:1', descriptor: manifest.desc }],
  };
  return { layer, config, manifest, content, longName };
}

test('BundleWriter lays out, signs and fills a bundle that BundleReader and tar accept', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-writer-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { layer, config, manifest, content, longName } = fixture(dir);
  const out = join(dir, 'b.tar');
  const w = await BundleWriter.create(out, content, sign);
  assert.equal(await w.exists(layer.desc), false);
  // Blobs arrive in any order, in parallel.
  await Promise.all([w.push(config.desc, body(config)), w.push(layer.desc, body(layer)), w.writeFile(content.files[0]!)]);
  assert.equal(await w.exists(layer.desc), true);
  await assert.rejects(w.commit(), /never written \(first: oci\/blobs\/sha256\//);
  await w.push(manifest.desc, body(manifest));
  await w.commit();
  assert.equal(statSync(out).size, w.size);
  assert.deepEqual(readdirSync(dir).sort(), ['app.yaml', 'b.tar']);

  const seen: string[] = [];
  const index = await readBundle(createReadStream(out), {
    publicKey,
    source: 'b.tar',
    onEntry: async (e, s) => {
      seen.push(e.path);
      for await (const _ of s) void _;
    },
  });
  assert.deepEqual(seen, [longName, 'oci/oci-layout', `oci/blobs/sha256/${layer.desc.digest.slice(7)}`, `oci/blobs/sha256/${config.desc.digest.slice(7)}`, `oci/blobs/sha256/${manifest.desc.digest.slice(7)}`, 'oci/index.json']);
  assert.equal(index.name, 'demo');

  // GNU tar reads it too, long (PAX) name included, and gets an OCI layout.
  const listing = execFileSync('tar', ['-tf', out], { encoding: 'utf8' }).trim().split('\n');
  assert.deepEqual(listing.slice(0, 3), ['airlock.json', 'airlock.json.sig', longName]);
  execFileSync('tar', ['-xf', out, '-C', dir]);
  const ociIndex = JSON.parse(readFileSync(join(dir, 'oci', 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  assert.equal(ociIndex.manifests[0]!.annotations!['org.opencontainers.image.ref.name'], 'docker.io/harness/app:1');
  assert.deepEqual(readFileSync(join(dir, 'oci', 'blobs', 'sha256', layer.desc.digest.slice(7))), layer.bytes);

  // Overhead: headers and padding only.
  const payload = content.blobs.concat(content.manifests).reduce((a, d) => a + d.size, 0);
  assert.ok(w.size - payload < 16 * 1024, `overhead ${w.size - payload}`);
});

test('BundleWriter: a bad blob leaves its slot empty; abort removes the partial file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-writer-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { layer, content } = fixture(dir);
  const w = await BundleWriter.create(join(dir, 'b.tar'), content, sign);
  const corrupt = Buffer.from(layer.bytes);
  corrupt[500] = 1;
  await assert.rejects(w.push(layer.desc, body(layer, corrupt)), /digest/);
  assert.equal(await w.exists(layer.desc), false);
  await assert.rejects(w.push(layer.desc, body(layer, layer.bytes.subarray(10))), /size|bytes/);
  assert.equal(await w.exists(layer.desc), false);
  await assert.rejects(w.push({ ...layer.desc, digest: `sha256:${'0'.repeat(64)}` }, body(layer)), /not in the bundle's layout/);
  assert.equal(readdirSync(dir).filter((f) => f.endsWith('.partial')).length, 1);
  await w.abort();
  await w.abort();
  assert.deepEqual(readdirSync(dir).sort(), ['app.yaml']);
});

test('BundleWriter refuses an output folder that does not exist (exit 2) and paths outside the bundle roots', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-writer-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { content } = fixture(dir);
  await assert.rejects(BundleWriter.create(join(dir, 'nope', 'b.tar'), content, sign), (e: Error & { exitCode?: number }) => e.exitCode === 2);
  const bad = { ...content, files: [{ ...content.files[0]!, path: 'manifests/../etc/passwd' }] };
  await assert.rejects(BundleWriter.create(join(dir, 'b.tar'), bad, sign), /cannot pack "manifests\/\.\.\/etc\/passwd"/);
});

test('BundleWriter: a blob of many odd-sized chunks lands byte for byte, its header with it; a retried push rewrites the slot', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-writer-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { layer, config, manifest, content } = fixture(dir);
  // Over 3 write batches, in chunks from 1 byte (more than one pwritev's IOV_MAX of them) to 300 KB.
  const big = blob(Buffer.from(Array.from({ length: 3_500_000 }, (_, i) => (i * 7919) % 251)));
  const sizes = [...Array.from({ length: 2000 }, () => 1), 300_000, 17, 65_536, 999_999];
  const chunks: Buffer[] = [];
  for (let at = 0, i = 0; at < big.bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    chunks.push(big.bytes.subarray(at, at + n));
    at += n;
  }
  const w = await BundleWriter.create(join(dir, 'b.tar'), { ...content, blobs: [big.desc, ...content.blobs] }, sign);
  // A first try that breaks after 1 MB (a dropped connection): the slot stays empty, and the push may be tried again.
  const broken = Readable.from(
    (async function* () {
      yield big.bytes.subarray(0, 1_000_000);
      throw new Error('connection reset');
    })(),
  );
  await assert.rejects(w.push(big.desc, broken), /connection reset/);
  assert.equal(await w.exists(big.desc), false);
  await w.push(big.desc, Readable.from(chunks).pipe(new VerifyingStream(big.desc, 'test')));
  for (const b of [layer, config, manifest]) await w.push(b.desc, body(b));
  await w.writeFile(content.files[0]!);
  await w.commit();
  execFileSync('tar', ['-xf', join(dir, 'b.tar'), '-C', dir]);
  assert.deepEqual(readFileSync(join(dir, 'oci', 'blobs', 'sha256', big.desc.digest.slice(7))), big.bytes);
  assert.deepEqual(readFileSync(join(dir, 'oci', 'blobs', 'sha256', layer.desc.digest.slice(7))), layer.bytes);
});

test('BundleWriter: a source with more bytes than its descriptor is refused before it writes past its slot', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-writer-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { layer, config, manifest, content } = fixture(dir);
  const w = await BundleWriter.create(join(dir, 'b.tar'), content, sign);
  for (const b of [config, manifest]) await w.push(b.desc, body(b));
  // Unverified bytes (the writer's own bound, not the source's check): the layer and then 2 MB more.
  const tooLong = Readable.from([layer.bytes, Buffer.alloc(2 * 1024 * 1024, 9)]);
  await assert.rejects(w.push(layer.desc, tooLong), /more bytes than its descriptor's size/);
  assert.equal(await w.exists(layer.desc), false);
  await w.push(layer.desc, body(layer));
  await w.writeFile(content.files[0]!);
  await w.commit();
  // The entries after the layer's slot are intact: the bundle reads and verifies.
  const index = await readBundle(createReadStream(join(dir, 'b.tar')), {
    publicKey,
    source: 'b.tar',
    onEntry: async (_e, s) => {
      for await (const _ of s) void _;
    },
  });
  assert.equal(index.name, 'demo');
});
