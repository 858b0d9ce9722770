// The test services themselves: a real distribution registry (anonymous, basic, token, TLS),
// the token issuer, the fault proxy and the synthetic image pusher, checked with skopeo.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { run, runBytes } from '../services/exec.ts';
import { startFaultProxy } from '../services/faultProxy.ts';
import { generateImages, MEDIA, openBlob, pushImages, type SyntheticImage } from '../services/fixtures.ts';
import { basicAuth, httpRequest } from '../services/http.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { skopeoFlags } from '../services/skopeo.ts';
import { libtrustKeyId } from '../services/tokenIssuer.ts';

const sha256 = (b: Buffer) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

async function inspectRaw(reg: RegistryService, ref: string, flags = skopeoFlags(reg)): Promise<Buffer> {
  return runBytes('skopeo', ['inspect', '--raw', ...flags, `docker://${reg.host}/${ref}`]);
}

async function caOf(reg: RegistryService): Promise<Buffer | undefined> {
  return reg.caFile ? fs.readFile(reg.caFile) : undefined;
}

test('anonymous registry: push OCI and Docker images (index, shared layers); skopeo sees the same bytes; restart keeps data', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const images = await generateImages({
    seed: 7,
    images: [
      { repository: 'apps/one', tag: '1.0', layers: 3, layerSize: 20_000, sharedBaseLayers: 2 },
      { repository: 'apps/two', tag: '2.0', layers: 2, layerSize: 10_000, sharedBaseLayers: 2 },
      { repository: 'apps/multi', tag: 'v1', layers: 2, layerSize: 5_000, platforms: ['linux/amd64', 'linux/arm64/v8'], format: 'docker' },
    ],
  });
  // shared base layers are the same blobs in both images
  assert.deepEqual(images[0].blobs.slice(1, 3), images[1].blobs.slice(1, 3));
  assert.equal(images[2].mediaType, MEDIA.dockerList);
  assert.equal(images[2].children?.length, 2);

  // deterministic: the same seed gives the same digests
  const again = await generateImages({ seed: 7, images: [{ repository: 'apps/one', tag: '1.0', layers: 3, layerSize: 20_000, sharedBaseLayers: 2 }] });
  assert.equal(again[0].digest, images[0].digest);

  await pushImages(reg.url, images);
  for (const img of images) {
    const raw = await inspectRaw(reg, `${img.repository}:${img.tag}`);
    assert.equal(sha256(raw), img.digest);
    assert.deepEqual(raw, img.manifest);
  }
  const arm = images[2].children![1];
  assert.deepEqual(arm.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.equal(sha256(await inspectRaw(reg, `apps/multi@${arm.digest}`)), arm.digest);

  // the access log counts requests: one manifest PUT per image, two more for the index's children
  assert.equal((await reg.requests(/^PUT \/v2\/.*\/manifests\//)).length, 5);

  await reg.restart();
  const r = await httpRequest(`${reg.url}/v2/apps/one/manifests/1.0`, { method: 'HEAD', headers: { accept: MEDIA.ociManifest } });
  assert.equal(r.status, 200);
  assert.equal(r.headers['docker-content-digest'], images[0].digest);
});

test('read-only registry refuses writes with 405', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const images = await generateImages({ seed: 1, images: [{ repository: 'ro/app', tag: '1', layers: 1, layerSize: 1000 }] });
  await pushImages(reg.url, images);
  await reg.restart({ readOnly: true });
  const post = await httpRequest(`${reg.url}/v2/ro/app/blobs/uploads/`, { method: 'POST', headers: { 'content-length': 0 } });
  assert.equal(post.status, 405);
  assert.equal((await httpRequest(`${reg.url}/v2/ro/app/manifests/1`, { headers: { accept: MEDIA.ociManifest } })).status, 200);
});

test('basic auth registry: 401 without or with wrong credentials, 200 with the right ones; push and inspect', async (t) => {
  const reg = await startRegistry({ auth: 'basic' });
  t.after(() => reg.stop());
  assert.equal(reg.username, 'airlock');
  const none = await httpRequest(`${reg.url}/v2/`);
  assert.equal(none.status, 401);
  assert.match(String(none.headers['www-authenticate']), /^Basic realm=/);
  const wrong = await httpRequest(`${reg.url}/v2/`, { headers: { authorization: basicAuth('airlock', 'nope') } });
  assert.equal(wrong.status, 401);
  const ok = await httpRequest(`${reg.url}/v2/`, { headers: { authorization: basicAuth(reg.username!, reg.password!) } });
  assert.equal(ok.status, 200);

  const images = await generateImages({ seed: 2, images: [{ repository: 'secure/app', tag: '1', layers: 1, layerSize: 1000 }] });
  await assert.rejects(pushImages(reg.url, images), /Basic auth/);
  await pushImages(reg.url, images, { username: reg.username, password: reg.password });
  assert.equal(sha256(await inspectRaw(reg, 'secure/app:1')), images[0].digest);
  await assert.rejects(inspectRaw(reg, 'secure/app:1', skopeoFlags(reg, undefined, { creds: false })));
});

test('token auth registry: issuer checks credentials, grants requested scopes, registry accepts its tokens', async (t) => {
  const reg = await startRegistry({ auth: 'token' });
  t.after(() => reg.stop());
  const issuer = reg.tokenIssuer!;
  const challenge = await httpRequest(`${reg.url}/v2/`);
  assert.equal(challenge.status, 401);
  assert.equal(challenge.headers['www-authenticate'], `Bearer realm="${issuer.realm}",service="airlock-test-registry"`);

  // the kid is libtrust's key ID of the certificate in the registry's rootcertbundle
  const cert = new crypto.X509Certificate(await fs.readFile(issuer.certFile));
  assert.equal(issuer.kid, libtrustKeyId(cert.publicKey));
  assert.match(issuer.kid, /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);

  const bad = await httpRequest(`${issuer.realm}?service=airlock-test-registry&scope=repository:x:pull`, {
    headers: { authorization: basicAuth(reg.username!, 'wrong') },
  });
  assert.equal(bad.status, 401);

  const tokUrl = `${issuer.realm}?service=airlock-test-registry&scope=repository:tok/app:pull,push&scope=repository:other:pull`;
  const res = await httpRequest(tokUrl, { headers: { authorization: basicAuth(reg.username!, reg.password!) } });
  assert.equal(res.status, 200);
  const body = JSON.parse(res.body.toString()) as { token: string; access_token: string; expires_in: number; issued_at: string };
  assert.equal(body.token, body.access_token);
  const claims = JSON.parse(Buffer.from(body.token.split('.')[1], 'base64url').toString());
  assert.deepEqual(claims.access, [
    { type: 'repository', name: 'tok/app', actions: ['pull', 'push'] },
    { type: 'repository', name: 'other', actions: ['pull'] },
  ]);
  assert.equal((await httpRequest(`${reg.url}/v2/`, { headers: { authorization: `Bearer ${body.token}` } })).status, 200);

  // anonymous: a token with no access (like Docker Hub), so pulls are refused
  const anon = await httpRequest(`${issuer.realm}?service=airlock-test-registry&scope=repository:tok/app:pull`);
  const anonToken = (JSON.parse(anon.body.toString()) as { token: string }).token;
  const denied = await httpRequest(`${reg.url}/v2/tok/app/tags/list`, { headers: { authorization: `Bearer ${anonToken}` } });
  assert.equal(denied.status, 401);
  assert.match(String(denied.headers['www-authenticate']), /error="insufficient_scope"/);

  const images = await generateImages({ seed: 3, images: [{ repository: 'tok/app', tag: '1', layers: 2, layerSize: 1000 }] });
  await pushImages(reg.url, images, { username: reg.username, password: reg.password });
  assert.equal(sha256(await inspectRaw(reg, 'tok/app:1')), images[0].digest);

  assert.ok(reg.tokenRequests.some((r) => r.user === 'airlock' && r.scopes.includes('repository:tok/app:pull,push')));
  assert.ok(reg.tokenRequests.some((r) => r.user === undefined && r.status === 200));
  assert.ok(reg.tokenRequests.some((r) => r.status === 401));
});

test('TLS registry (anonymous, and with token auth): skopeo verifies it with the test CA only', async (t) => {
  const reg = await startRegistry({ tls: true });
  t.after(() => reg.stop());
  assert.match(reg.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  assert.deepEqual(await fs.readdir(reg.certDir!), ['ca.crt']);
  const images = await generateImages({ seed: 4, images: [{ repository: 'tls/app', tag: '1', layers: 1, layerSize: 1000 }] });
  await pushImages(reg.url, images, { caFile: reg.caFile });
  assert.equal(sha256(await inspectRaw(reg, 'tls/app:1', ['--cert-dir', reg.certDir!])), images[0].digest);
  // without the CA the certificate is not trusted
  await assert.rejects(inspectRaw(reg, 'tls/app:1', []), /certificate|x509/);

  const tok = await startRegistry({ tls: true, auth: 'token' });
  t.after(() => tok.stop());
  assert.match(tok.tokenIssuer!.realm, /^https:/);
  await pushImages(tok.url, images, { caFile: tok.caFile, username: tok.username, password: tok.password });
  assert.equal(sha256(await inspectRaw(tok, 'tls/app:1')), images[0].digest);
  const ca = await caOf(tok);
  assert.equal((await httpRequest(`${tok.url}/v2/`, { ca })).status, 401);
});

test('fault proxy: 429 once, stall, 503 on an upload, drop-after-bytes on a blob GET, keep-alive and chunked bodies, skopeo through it', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: reg.port });
  t.after(() => proxy.stop());
  const images: SyntheticImage[] = await generateImages({ seed: 5, images: [{ repository: 'f/app', tag: '1', layers: 1, layerSize: 256 * 1024 }] });

  // status: answered by the proxy, never reaches the registry
  proxy.addFault({ match: /^GET \/v2\/ /, times: 1, kind: 'status', status: 429, retryAfterSeconds: 2 });
  const first = await httpRequest(`${proxy.url}/v2/`);
  assert.equal(first.status, 429);
  assert.equal(first.headers['retry-after'], '2');
  assert.equal((await httpRequest(`${proxy.url}/v2/`)).status, 200);
  assert.equal((await reg.requests(/^GET \/v2\/ /)).length, 1);

  // stall
  proxy.addFault({ match: /^GET \/v2\/ /, times: 1, kind: 'stall', ms: 300 });
  const t0 = Date.now();
  assert.equal((await httpRequest(`${proxy.url}/v2/`)).status, 200);
  assert.ok(Date.now() - t0 >= 290);

  // 503 on the blob upload's PUT (with its body in flight), then a clean retry
  proxy.addFault({ match: /^PUT \/v2\/f\/app\/blobs\/uploads\//, times: 1, kind: 'status', status: 503 });
  await assert.rejects(pushImages(proxy.url, images), /HTTP 503/);
  await pushImages(proxy.url, images);
  assert.equal(sha256(await inspectRaw(reg, 'f/app:1')), images[0].digest);

  // drop-after-bytes: the client gets exactly 1000 body bytes, then the connection closes
  const layer = images[0].blobs[1];
  proxy.addFault({ match: /^GET \/v2\/f\/app\/blobs\/sha256:/, times: 1, kind: 'drop-after-bytes', bytes: 1000 });
  const cut = await httpRequest(`${proxy.url}/v2/f/app/blobs/${layer.digest}`).then(
    () => assert.fail('expected a cut response'),
    (e: Error & { received?: Buffer; status?: number }) => e,
  );
  assert.equal(cut.status, 200);
  assert.equal(cut.received?.length, 1000);
  const whole = await httpRequest(`${proxy.url}/v2/f/app/blobs/${layer.digest}`);
  assert.equal(sha256(whole.body), layer.digest);

  // keep-alive: a chunked upload and then a GET on one connection, both seen as requests
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const before = proxy.stats();
  const start = await httpRequest(`${proxy.url}/v2/f/chunked/blobs/uploads/`, { method: 'POST', agent, headers: { 'content-length': 0 } });
  assert.equal(start.status, 202);
  const put = new URL(String(start.headers.location));
  put.searchParams.set('digest', layer.digest);
  const chunked = await httpRequest(put, { method: 'PUT', agent, body: Readable.from(openBlob(images, layer.digest)) });
  assert.equal(chunked.status, 201);
  assert.equal((await httpRequest(`${proxy.url}/v2/f/chunked/blobs/${layer.digest}`, { method: 'HEAD', agent })).status, 200);
  const after = proxy.stats();
  assert.equal(after.connections - before.connections, 1);
  assert.deepEqual(after.requests.slice(before.requests.length).map((l) => l.split(' ')[0]), ['POST', 'PUT', 'HEAD']);
  assert.ok((await reg.requests(/^PUT .*digest=/)).length >= 1);

  // a real client (skopeo, Go net/http) through the proxy
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'airlock-skopeo-'));
  t.after(() => fs.rm(tmp, { recursive: true, force: true }));
  const policy = path.join(tmp, 'policy.json');
  await fs.writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  await run('skopeo', [
    '--policy', policy, 'copy', '--src-tls-verify=false', '--dest-tls-verify=false',
    `docker://${reg.host}/f/app:1`, `docker://127.0.0.1:${proxy.port}/f/copy:1`,
  ]);
  assert.equal(sha256(await inspectRaw(reg, 'f/copy:1')), images[0].digest);
  assert.equal(proxy.stats().faultsInjected, 4);
});
