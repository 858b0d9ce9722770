import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { RemoteError, VerificationError } from '../../shared/cli/errors.ts';
import { parseBundleIndex } from '../../shared/bundle/format.ts';
import { signatureProblem } from '../../shared/bundle/signatures.ts';
import { RegistryClient } from '../../shared/registry/client.ts';
import { hasReferrersApi, listReferrers, referrersTag, withReferrers } from '../../shared/registry/referrers.ts';
import { HttpTransport } from '../../shared/registry/transport.ts';

/**
 * The referrers API path (no registry we can run offline has it:
 * docker-registry 2.8 and 3.x answer 404) against recorded answers replayed
 * over HTTP to the real RegistryClient: a two-page listing in the shape of the
 * distribution-spec's "Listing Referrers" example (with real digests), the
 * 404s docker-registry 2.8 gives (recorded from it: "404 page not found" for
 * the route, MANIFEST_UNKNOWN for a missing fallback tag), a fallback index,
 * and the spec's own filtered example, whose trailing comma is not JSON.
 */
const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const SUBJECT = sha('subject');
const SBOM = sha('sbom');
const SIGNATURE = sha('signature');
const NESTED = sha('an index');
const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

interface Recorded {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const page1 = JSON.stringify({
  schemaVersion: 2,
  mediaType: INDEX,
  manifests: [
    { mediaType: MANIFEST, size: 1234, digest: SBOM, artifactType: 'application/vnd.example.sbom.v1', annotations: { 'org.opencontainers.image.created': '2022-01-01T14:42:55Z', 'org.example.sbom.format': 'json' } },
    { mediaType: MANIFEST, size: 1234, digest: SIGNATURE, artifactType: 'application/vnd.example.signature.v1', annotations: { 'org.opencontainers.image.created': '2022-01-01T07:21:33Z', 'org.example.signature.fingerprint': 'abcd' } },
  ],
});
const page2 = JSON.stringify({
  schemaVersion: 2,
  mediaType: INDEX,
  manifests: [
    { mediaType: INDEX, size: 1234, digest: NESTED, annotations: { 'org.opencontainers.image.created': '2023-01-01T07:21:33Z' } },
    // Listed again on the next page (a registry paging while a push lands): kept once.
    { mediaType: MANIFEST, size: 1234, digest: SBOM, artifactType: 'application/vnd.example.sbom.v1' },
    // Not a manifest: dropped.
    { mediaType: 'application/vnd.oci.image.layer.v1.tar', size: 10, digest: sha('layer') },
  ],
});
const ROUTE_404: Recorded = { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8', 'docker-distribution-api-version': 'registry/2.0' }, body: '404 page not found\n' };
const manifestUnknown = (tag: string): Recorded => ({
  status: 404,
  headers: { 'content-type': 'application/json; charset=utf-8', 'docker-distribution-api-version': 'registry/2.0' },
  body: JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { Tag: tag } }] }) + '\n',
});
const fallbackIndex = JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ mediaType: MANIFEST, size: 500, digest: SIGNATURE, artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json' }] });

/** Path (and query) -> the recorded answer; `origin` is filled in once the server listens. */
const answers = new Map<string, (origin: string) => Recorded>([
  [`/v2/api/app/referrers/${SUBJECT}`, (o) => ({ status: 200, headers: { 'content-type': INDEX, link: `<${o}/v2/api/app/referrers/${SUBJECT}?n=2&last=${SIGNATURE}>; rel="next"` }, body: page1 })],
  [`/v2/api/app/referrers/${SUBJECT}?n=2&last=${SIGNATURE}`, () => ({ status: 200, headers: { 'content-type': INDEX }, body: page2 })],
  [`/v2/empty/app/referrers/${SUBJECT}`, () => ({ status: 200, headers: { 'content-type': INDEX }, body: JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [] }) })],
  [`/v2/old/app/referrers/${SUBJECT}`, () => ROUTE_404],
  [`/v2/old/app/manifests/${referrersTag(SUBJECT)}`, () => ({ status: 200, headers: { 'content-type': INDEX, 'docker-content-digest': sha(fallbackIndex) }, body: fallbackIndex })],
  [`/v2/none/app/referrers/${SUBJECT}`, () => ROUTE_404],
  [`/v2/none/app/manifests/${referrersTag(SUBJECT)}`, () => manifestUnknown(referrersTag(SUBJECT))],
  [
    `/v2/broken/app/referrers/${SUBJECT}`,
    () => ({
      status: 200,
      headers: { 'content-type': INDEX, 'oci-filters-applied': 'artifactType' },
      body: `{"schemaVersion": 2, "mediaType": "${INDEX}", "manifests": [{"mediaType": "${MANIFEST}", "size": 1234, "digest": "${SBOM}", "artifactType": "application/vnd.example.sbom.v1"}],}`,
    }),
  ],
  [`/v2/elsewhere/app/referrers/${SUBJECT}`, () => ({ status: 200, headers: { 'content-type': INDEX, link: `<http://192.0.2.1/v2/elsewhere/app/referrers/${SUBJECT}?n=2>; rel="next"` }, body: page1 })],
]);

describe('referrers: the API path against recorded answers', () => {
  let server: http.Server;
  let client: RegistryClient;
  let transport: HttpTransport;
  const requests: string[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      const origin = `http://${req.headers.host}`;
      const a = answers.get(req.url!)?.(origin) ?? (req.url === '/v2/' ? { status: 200, headers: {}, body: '{}' } : ROUTE_404);
      res.writeHead(a.status, { ...a.headers, 'content-length': Buffer.byteLength(a.body) });
      res.end(req.method === 'HEAD' ? undefined : a.body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    transport = new HttpTransport({});
    client = new RegistryClient(`127.0.0.1:${(server.address() as AddressInfo).port}`, transport, { plainHttp: true });
  });

  after(async () => {
    await transport.close();
    await new Promise((r) => server.close(r));
  });

  test('a registry with the API: every page followed (Link rel="next"), descriptors as listed, each digest once, non-manifests dropped', async () => {
    const listing = await listReferrers(client, 'api/app', SUBJECT);
    assert.equal(listing.via, 'api');
    assert.deepEqual(
      listing.referrers.map((d) => [d.mediaType, d.digest, d.artifactType]),
      [
        [MANIFEST, SBOM, 'application/vnd.example.sbom.v1'],
        [MANIFEST, SIGNATURE, 'application/vnd.example.signature.v1'],
        [INDEX, NESTED, undefined],
      ],
    );
    assert.deepEqual(listing.referrers[1]!.annotations, { 'org.opencontainers.image.created': '2022-01-01T07:21:33Z', 'org.example.signature.fingerprint': 'abcd' });
    assert.ok(!requests.some((r) => r.includes('/manifests/')), 'no fallback tag is read when the API answers');
  });

  test('docker-registry 2.8 (404 on the route): the sha256-<hex> fallback index is read instead', async () => {
    const listing = await listReferrers(client, 'old/app', SUBJECT);
    assert.deepEqual(listing, { via: 'tag', referrers: [{ mediaType: MANIFEST, digest: SIGNATURE, size: 500, artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json' }] });
    assert.deepEqual(await listReferrers(client, 'none/app', SUBJECT), { via: 'tag', referrers: [] });
  });

  test('the probe: 200 (even an empty listing) is the API, the route 404 is none', async () => {
    assert.equal(await hasReferrersApi(client, 'empty/app', SUBJECT), true);
    assert.equal(await hasReferrersApi(client, 'old/app', SUBJECT), false);
  });

  test('a malformed answer (the spec’s filtered example, trailing comma) and a next page on another host are refused as remote failures', async () => {
    await assert.rejects(listReferrers(client, 'broken/app', SUBJECT), (err: unknown) => err instanceof RemoteError && /referrers of .*not JSON/.test((err as Error).message));
    await assert.rejects(listReferrers(client, 'elsewhere/app', SUBJECT), (err: unknown) => err instanceof RemoteError && /next page is on another host/.test((err as Error).message));
  });
});

describe('referrers: the tag schema and the fallback index', () => {
  test('referrersTag follows the distribution-spec table', () => {
    assert.equal(referrersTag(`sha256:${'a'.repeat(64)}`), `sha256-${'a'.repeat(64)}`);
    assert.equal(referrersTag(`sha512:${'a'.repeat(128)}`), `sha512-${'a'.repeat(64)}`);
    assert.equal(
      referrersTag('test+algorithm+using+algorithm+separators+and+lots+of+characters+to+excercise+overall+truncation:alsoSome=InTheEncodedSectionToShowHyphenReplacementAndLotsAndLotsOfCharactersToExcerciseEncodedTruncation'),
      'test-algorithm-using-algorithm-s-alsoSome-InTheEncodedSectionToShowHyphenReplacementAndLotsAndLot',
    );
  });

  test('withReferrers keeps what another tool listed and appends only what is missing', () => {
    const other = { mediaType: MANIFEST, digest: sha('other'), size: 1 };
    const ours = { mediaType: MANIFEST, digest: SIGNATURE, size: 2, artifactType: 'x' };
    const created = withReferrers(undefined, [ours]);
    assert.deepEqual(created, { index: { schemaVersion: 2, mediaType: INDEX, manifests: [ours] }, changed: true });
    const extended = withReferrers({ schemaVersion: 2, mediaType: INDEX, manifests: [other] }, [ours]);
    assert.deepEqual(extended.index.manifests, [other, ours]);
    assert.equal(extended.changed, true);
    assert.equal(withReferrers(extended.index, [ours]).changed, false);
    // Two tags of one image bring the same referrer twice: listed once.
    assert.deepEqual(withReferrers(undefined, [ours, ours]).index.manifests, [ours]);
  });
});

describe('airlock.json: an image’s signatures are checked like the rest of the index', () => {
  const good = { kind: 'sig', subject: SUBJECT, tag: `${SUBJECT.replace(':', '-')}.sig`, digest: SIGNATURE, mediaType: MANIFEST };
  test('entries of every kind pass; wrong tags, tagged referrers, bad digests and unknown kinds do not', () => {
    assert.equal(signatureProblem(good as never), undefined);
    assert.equal(signatureProblem({ kind: 'referrer', subject: SUBJECT, digest: SIGNATURE, mediaType: MANIFEST, artifactType: 'x', annotations: { a: 'b' } }), undefined);
    assert.match(signatureProblem({ ...good, tag: 'latest' } as never)!, /needs the tag/);
    assert.match(signatureProblem({ ...good, tag: `${SUBJECT.replace(':', '-')}.att` } as never)!, /needs the tag/);
    assert.match(signatureProblem({ ...good, kind: 'referrer' } as never)!, /has no tag/);
    assert.match(signatureProblem({ ...good, digest: 'sha256:zz' } as never)!, /sha256 digest/);
    assert.match(signatureProblem({ ...good, kind: 'notary' } as never)!, /unknown kind/);
    assert.match(signatureProblem({ ...good, mediaType: 'application/octet-stream' } as never)!, /mediaType/);
  });

  test('a hostile entry makes the index invalid (exit 3)', () => {
    const index = (signatures: unknown) =>
      Buffer.from(
        JSON.stringify({
          airlockVersion: 1,
          name: 'x',
          version: '1',
          created: '2026-12-01T10:00:00.000Z',
          platforms: [],
          images: [{ ref: 'docker.io/a/b:1', digest: SUBJECT, mediaType: MANIFEST, signatures }],
          charts: [],
          entries: [],
        }),
      );
    assert.equal(parseBundleIndex(index([good])).images[0]!.signatures!.length, 1);
    assert.throws(() => parseBundleIndex(index([{ ...good, tag: '../../x' }])), (err: unknown) => err instanceof VerificationError && /images\[0\]\.signatures\[0\] needs the tag/.test((err as Error).message));
    assert.throws(() => parseBundleIndex(index('nope')), VerificationError);
  });
});
