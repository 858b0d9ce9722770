import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { childrenOf, isForeignLayer, MANIFEST_ACCEPT, MediaType, parseManifest } from '../../shared/oci/mediatype.ts';
import { isAttestationManifest, matchesAny, normalizePlatform, parsePlatform, platformMatches, formatPlatform } from '../../shared/oci/platform.ts';
import { digestOf, parseDigest, VerifyingStream } from '../../shared/oci/digest.ts';
import { VerificationError } from '../../shared/cli/errors.ts';

const d = (c: string) => 'sha256:' + c.repeat(64);
const desc = (mediaType: string, c: string, size = 10) => ({ mediaType, digest: d(c), size });

test('Accept header lists indexes first, both families', () => {
  assert.equal(
    MANIFEST_ACCEPT,
    'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, ' +
      'application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json',
  );
});

test('manifest media type: body, then Content-Type (parameters ignored), then shape', () => {
  const m = { schemaVersion: 2, config: desc(MediaType.ociConfig, 'a'), layers: [desc(MediaType.ociLayerGzip, 'b')] };
  const bytes = (o: object) => Buffer.from(JSON.stringify(o));
  assert.equal(parseManifest(bytes({ ...m, mediaType: MediaType.dockerManifest }), undefined, 'x').mediaType, MediaType.dockerManifest);
  assert.equal(parseManifest(bytes(m), `${MediaType.dockerManifest}; charset=utf-8`, 'x').mediaType, MediaType.dockerManifest);
  assert.equal(parseManifest(bytes(m), 'application/json', 'x').mediaType, MediaType.ociManifest);
  const idx = { schemaVersion: 2, manifests: [desc(MediaType.ociManifest, 'c')] };
  assert.equal(parseManifest(bytes(idx), undefined, 'x').mediaType, MediaType.ociIndex);
  assert.throws(
    () => parseManifest(bytes({ ...m, mediaType: MediaType.ociManifest }), MediaType.dockerManifest, 'x'),
    /body says mediaType/,
  );
});

test('children: index -> manifests; manifest -> config then layers, foreign layers left out', () => {
  const foreign = { ...desc(MediaType.dockerForeignLayer, 'f'), urls: ['https://mcr.microsoft.com/x'] };
  const m = {
    schemaVersion: 2,
    mediaType: MediaType.dockerManifest,
    config: desc(MediaType.dockerConfig, 'a'),
    layers: [foreign, desc(MediaType.dockerLayer, 'b')],
    subject: desc(MediaType.ociManifest, 'e'),
  };
  const parsed = parseManifest(Buffer.from(JSON.stringify(m)), undefined, 'x');
  assert.deepEqual(childrenOf(parsed).map((c) => c.digest), [d('a'), d('b')]);
  assert.equal(isForeignLayer(foreign), true);
});

test('malformed manifests are refused with the reason (exit 3)', () => {
  const cases: [string, RegExp][] = [
    ['{', /not valid JSON/],
    ['[]', /not a JSON object/],
    ['{"schemaVersion":1,"fsLayers":[]}', /schema 1/],
    [JSON.stringify({ schemaVersion: 2, mediaType: MediaType.dockerSchema1Signed }), /schema 1/],
    [JSON.stringify({ schemaVersion: 3, manifests: [] }), /schemaVersion must be 2/],
    [JSON.stringify({ schemaVersion: 2, config: { mediaType: 'x', digest: 'sha256:zz', size: 1 }, layers: [] }), /invalid digest/],
    [JSON.stringify({ schemaVersion: 2, config: desc('x', 'a', -1), layers: [] }), /invalid size/],
    [JSON.stringify({ schemaVersion: 2, config: desc('x', 'a', 1.5), layers: [] }), /invalid size/],
    [JSON.stringify({ schemaVersion: 2, config: desc('x', 'a') }), /without a layers list/],
    [JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.example+json' }), /unsupported manifest media type/],
    [JSON.stringify({ schemaVersion: 2, manifests: [{ digest: d('a'), size: 1 }] }), /missing mediaType/],
  ];
  for (const [text, why] of cases) {
    assert.throws(
      () => parseManifest(Buffer.from(text), undefined, 'manifest of test'),
      (err: Error) => err instanceof VerificationError && why.test(err.message) && err.message.startsWith('manifest of test'),
      text,
    );
  }
});

test('platforms parse, format and normalize like containerd', () => {
  assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.equal(formatPlatform(parsePlatform('linux/amd64')), 'linux/amd64');
  for (const bad of ['linux', 'linux/', 'a/b/c/d', 'linux/amd 64', '']) assert.throws(() => parsePlatform(bad), /invalid platform/);
  assert.deepEqual(normalizePlatform({ os: 'Linux', architecture: 'x86_64' }), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'aarch64' }), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' }), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'arm' }), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'armel' }), { os: 'linux', architecture: 'arm', variant: 'v6' });
});

test('platform matching: variants, aliases, attestations', () => {
  const amd = parsePlatform('linux/amd64');
  assert.equal(platformMatches(amd, { os: 'linux', architecture: 'amd64' }), true);
  assert.equal(platformMatches(amd, { os: 'linux', architecture: 'x86_64' }), true);
  assert.equal(platformMatches(amd, { os: 'windows', architecture: 'amd64' }), false);
  assert.equal(platformMatches(amd, undefined), false);
  assert.equal(platformMatches(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' }), true);
  assert.equal(platformMatches(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' }), true);
  assert.equal(platformMatches(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v6' }), false);
  assert.equal(platformMatches(parsePlatform('linux/arm'), { os: 'linux', architecture: 'arm', variant: 'v6' }), true);
  assert.equal(matchesAny([amd, parsePlatform('linux/arm64')], { os: 'linux', architecture: 'arm64' }), true);
  assert.equal(isAttestationManifest({ ...desc(MediaType.ociManifest, 'a'), platform: { os: 'unknown', architecture: 'unknown' } }), true);
  assert.equal(
    isAttestationManifest({ ...desc(MediaType.ociManifest, 'a'), annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } }),
    true,
  );
  assert.equal(isAttestationManifest({ ...desc(MediaType.ociManifest, 'a'), platform: amd }), false);
});

/** Push `data` through a VerifyingStream in chunks of `chunk` bytes; return what came out, or the error. */
async function throughVerifier(data: Buffer, expected: { digest: string; size: number }, chunk: number) {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunk) parts.push(data.subarray(i, i + chunk));
  const out: Buffer[] = [];
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      out.push(c);
      cb();
    },
  });
  try {
    await pipeline(Readable.from(parts), new VerifyingStream(expected, 'blob under test'), sink);
    return { out: Buffer.concat(out) };
  } catch (err) {
    return { out: Buffer.concat(out), err: err as Error };
  }
}

test('digests: sha256 of bytes, strict parsing', () => {
  assert.equal(digestOf(Buffer.from('')), 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.deepEqual(parseDigest(d('a')), { algorithm: 'sha256', hex: 'a'.repeat(64) });
  for (const bad of ['sha256:abc', 'md5:' + 'a'.repeat(32), 'sha256:' + 'A'.repeat(64), d('a') + '\n']) {
    assert.throws(() => parseDigest(bad), VerificationError);
  }
});

test('VerifyingStream passes good content byte-exact in any chunking', async () => {
  const data = Buffer.from(Array.from({ length: 100_003 }, (_, i) => (i * 31) & 0xff));
  const expected = { digest: digestOf(data), size: data.length };
  for (const chunk of [1, 7, 4096, 65536, 200_000]) {
    const r = await throughVerifier(chunk === 1 ? data.subarray(0, 5000) : data, chunk === 1 ? { digest: digestOf(data.subarray(0, 5000)), size: 5000 } : expected, chunk);
    assert.equal(r.err, undefined);
    assert.ok(r.out.equals(chunk === 1 ? data.subarray(0, 5000) : data));
  }
  const sha512 = 'sha512:' + createHash('sha512').update(data).digest('hex');
  assert.equal((await throughVerifier(data, { digest: sha512, size: data.length }, 1000)).err, undefined);
  assert.equal((await throughVerifier(Buffer.alloc(0), { digest: digestOf(Buffer.alloc(0)), size: 0 }, 10)).err, undefined);
});

test('VerifyingStream: wrong bytes never reach the consumer whole', async () => {
  const data = Buffer.alloc(50_000, 1);
  const wrong = Buffer.from(data);
  wrong[25_000] = 2;
  const r = await throughVerifier(wrong, { digest: digestOf(data), size: data.length }, 4096);
  assert.ok(r.err instanceof VerificationError);
  assert.match(r.err.message, /blob under test: content has digest sha256:[0-9a-f]{64}, expected/);
  assert.ok(r.out.length < data.length, `${r.out.length} bytes reached the consumer`);
});

test('VerifyingStream: too long fails as soon as exceeded, too short at the end', async () => {
  const data = Buffer.alloc(10_000, 3);
  const long = await throughVerifier(Buffer.concat([data, data]), { digest: digestOf(data), size: data.length }, 1000);
  assert.match(long.err?.message ?? '', /more than the expected 10000 bytes/);
  assert.ok(long.out.length < data.length);
  const short = await throughVerifier(data.subarray(0, 9999), { digest: digestOf(data), size: data.length }, 1000);
  assert.match(short.err?.message ?? '', /got 9999 bytes, expected 10000/);
});
