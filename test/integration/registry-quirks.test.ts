import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RemoteError } from '../../shared/cli/errors.ts';
import { copyGraph, CopySession } from '../../shared/copy.ts';
import { RegistryClient, type RegistryOptions } from '../../shared/registry/client.ts';
import { credentialsFor } from '../../shared/registry/credentials.ts';
import { DEFAULT_RETRY } from '../../shared/registry/retry.ts';
import { HttpTransport, type ProxySettings } from '../../shared/registry/transport.ts';
import { RemoteStore } from '../../shared/store/remote.ts';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { createTestCA } from '../services/ca.ts';
import { airlock } from '../helpers/cli.ts';
import { FAST_RETRY } from '../helpers/retry.ts';
import { generateImages, pushImages, type SyntheticImage } from '../services/fixtures.ts';
import { dockerHubRateLimit, startQuirkProxy, type QuirkAnswer, type QuirkProxy } from '../services/quirkProxy.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { startTinyproxy } from '../services/tinyproxy.ts';
import { startS3 } from '../services/s3.ts';
import { buildBundle } from '../helpers/tar.ts';
import { readPrivateKey } from '../../shared/sign/keys.ts';

/**
 * How real registries answer, each reproduced by a quirk front end
 * (test/services/quirkProxy.ts) in front of a real Docker distribution, or
 * by a real forward proxy (tinyproxy). Each test names the registry it
 * stands for and where the behaviour is documented.
 */

const NO_PROXY: ProxySettings = {};

function client(host: string, extra: RegistryOptions & { proxy?: ProxySettings } = {}): { client: RegistryClient; transport: HttpTransport } {
  const transport = new HttpTransport({ retry: extra.retry ?? FAST_RETRY, proxy: extra.proxy ?? NO_PROXY, caFile: extra.caFile });
  return { client: new RegistryClient(host, transport, { plainHttp: extra.caFile === undefined, retry: FAST_RETRY, ...extra }), transport };
}

const manifestRequests = (q: QuirkProxy, method: string) => q.log.filter((e) => e.method === method && /\/manifests\//.test(e.url));

describe('registries as they behave', () => {
  let registry: RegistryService;
  let images: SyntheticImage[];
  let work: string;
  const quirks: QuirkProxy[] = [];
  const front = async (target: RegistryService = registry) => {
    const q = await startQuirkProxy({ host: '127.0.0.1', port: target.port });
    quirks.push(q);
    return q;
  };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-quirks-'));
    registry = await startRegistry();
    images = await generateImages({
      seed: 12,
      baseLayerSize: 40_000,
      images: [
        { repository: 'library/nginx', tag: '1.25', layers: 2, layerSize: 30_000, sharedBaseLayers: 1 },
        { repository: 'harness/gateway', tag: '2.0', layers: 3, layerSize: 20_000, sharedBaseLayers: 1 },
        { repository: 'harness/ng-manager', tag: '1.0', layers: 3, layerSize: 20_000, sharedBaseLayers: 1 },
        { repository: 'library/pause', tag: '3.9', layers: 1, layerSize: 10_000, platforms: ['linux/amd64', 'linux/arm64'] },
      ],
    });
    await pushImages(registry.url, images);
  });

  after(async () => {
    for (const q of quirks) await q.stop();
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  // registry.k8s.io answers every /v2/ request with a 307 to the Artifact Registry region near the caller
  // (kubernetes/registry.k8s.io, cmd/archeio); distribution-spec: clients follow redirects, credentials stay on the origin.
  test('registry.k8s.io: manifest GET and HEAD follow redirects to another origin, without the credentials', async () => {
    const authed = await startRegistry({ auth: 'basic' });
    try {
      await pushImages(authed.url, [images[3]!], { username: authed.username, password: authed.password });
      const storage = await front(); // the "Artifact Registry" the redirect leads to: another origin, no credentials needed
      const k8s = await front(authed);
      k8s.add({
        name: 'registry.k8s.io: manifests live elsewhere',
        path: /\/manifests\//,
        // Authenticated first (the registry behind is a basic-auth one), then redirected.
        answer: (req): QuirkAnswer =>
          req.headers.authorization
            ? { status: 307, headers: { location: `http://localhost:${storage.port}${req.url}` } }
            : { status: 401, headers: { 'www-authenticate': 'Basic realm="k8s"' } },
      });
      const { client: c, transport } = client(k8s.host, { credentials: () => ({ username: authed.username!, password: authed.password! }) });
      try {
        const pause = images[3]!;
        const resolved = await c.resolve('library/pause', '3.9');
        assert.equal(resolved?.digest, pause.digest);
        const got = await c.getManifest('library/pause', '3.9');
        assert.equal(got?.descriptor.digest, pause.digest);
        assert.deepEqual(manifestRequests(k8s, 'HEAD').map((e) => e.status), [401, 307]);
        assert.equal(manifestRequests(storage, 'HEAD').length, 1);
        assert.equal(manifestRequests(storage, 'GET').length, 1);
        assert.ok(k8s.log.some((e) => e.authorization), 'the registry itself got the credentials');
        assert.ok(storage.log.every((e) => !e.authorization), 'the redirect target never sees them');

        // A loop ends after 5 hops with a clear error.
        k8s.clear();
        k8s.add({ name: 'loop', path: /\/manifests\//, answer: (req) => ({ status: 302, headers: { location: req.url } }) });
        k8s.log.length = 0;
        await assert.rejects(c.getManifest('library/pause', '3.8'), (e: Error) => e instanceof RemoteError && /more than 5 redirects/.test(e.message));
      } finally {
        await transport.close();
      }
    } finally {
      await authed.stop();
    }
  });

  // distribution-spec and RFC 9110 leave it to clients; docker (and Go's net/http) refuse nothing, airlock refuses
  // an https registry sending it to plain http, where anyone on the path could change the manifest's answer.
  test('a redirect from https to plain http is refused', async () => {
    const ca = await createTestCA(join(work, 'ca'));
    const secure = await startQuirkProxy({ host: '127.0.0.1', port: registry.port }, { tls: await ca.issue('quirk', ['127.0.0.1']) });
    quirks.push(secure);
    secure.add({ name: 'downgrade', path: /\/manifests\//, answer: (req) => ({ status: 302, headers: { location: `http://127.0.0.1:${registry.port}${req.url}` } }) });
    const { client: c, transport } = client(secure.host, { caFile: ca.caCert });
    const earlier = (await registry.requests(/manifests/)).length;
    try {
      await assert.rejects(c.getManifest('library/nginx', '1.25'), (e: RemoteError) => e instanceof RemoteError && /from https to http/.test(e.message));
      assert.equal((await registry.requests(/manifests/)).length, earlier, 'nothing went to the plain-http address');
    } finally {
      await transport.close();
    }
  });

  // Docker Hub: docs.docker.com/docker-hub/usage/pulls: "ratelimit-limit: 100;w=21600", each manifest GET counts,
  // HEAD does not; over the limit, 429 TOOMANYREQUESTS.
  describe('Docker Hub pull quota', () => {
    let hub: QuirkProxy;
    const spec = () => {
      writeFileSync(join(work, 'airlock.key'), generateKeyPair('pw').privateKeyPem, { mode: 0o600 });
      writeFileSync(
        join(work, 'airlock.yaml'),
        ['name: hub', 'version: 1.0.0', 'platforms: [linux/amd64]', 'images:', '  - nginx:1.25', '  - harness/gateway:2.0', '  - harness/ng-manager:1.0', '  - pause:3.9', ''].join('\n'),
      );
    };
    const pack = (out: string) =>
      airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', join(work, out), '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${hub.url}`], {
        env: { AIRLOCK_PASSWORD: 'pw', HTTPS_PROXY: undefined, HTTP_PROXY: undefined, https_proxy: undefined, http_proxy: undefined },
      });

    before(async () => {
      spec();
    });

    test('a pack needing more manifest GETs than remain stops before the first layer, with the numbers; HEADs are free', async () => {
      hub = await front();
      for (const r of dockerHubRateLimit(100, 4)) hub.add(r);
      const res = await pack('hub.tar');
      assert.equal(res.code, 4, res.stderr);
      // 3 single-platform images + the index of pause and its amd64 manifest = 5 GETs > 4.
      assert.match(res.stderr, /docker\.io allows 100 pulls per 6 h to this client and 4 remain/);
      assert.match(res.stderr, /needs at least 5 manifest reads/);
      assert.match(res.stderr, /docker login|--registry-username/);
      assert.match(res.stderr, /--registry-mirror docker\.io=URL/);
      assert.equal(manifestRequests(hub, 'GET').length, 0, 'no pull spent');
      assert.equal(hub.log.filter((e) => /\/blobs\//.test(e.url)).length, 0, 'no layer read');
      assert.equal(existsSync(join(work, 'hub.tar')), false);
    });

    test('a pack that fits packs, spending exactly the GETs it announced', async () => {
      hub = await front();
      for (const r of dockerHubRateLimit(100, 5)) hub.add(r);
      const res = await pack('hub-ok.tar');
      assert.equal(res.code, 0, res.stderr);
      assert.equal(manifestRequests(hub, 'GET').length, 5);
      assert.ok(manifestRequests(hub, 'HEAD').length >= 4);
    });

    test('a Harness-like list: docker.io with quota headers and registry.k8s.io redirecting every manifest request', async () => {
      hub = await front();
      for (const r of dockerHubRateLimit(100, 40)) hub.add(r);
      const storage = await front();
      const k8s = await front();
      k8s.add({ name: 'registry.k8s.io: redirect', path: /^\/v2\/.+/, answer: (req) => ({ status: 307, headers: { location: `http://localhost:${storage.port}${req.url}` } }) });
      writeFileSync(
        join(work, 'mixed.yaml'),
        ['name: mixed', 'version: 1.0.0', 'platforms: [linux/amd64]', 'images:', '  - nginx:1.25', '  - harness/gateway:2.0', '  - registry.k8s.io/pause:3.9', ''].join('\n'),
      );
      const res = await airlock(
        ['pack', '-f', join(work, 'mixed.yaml'), '-o', join(work, 'mixed.tar'), '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${hub.url}`, '--registry-mirror', `registry.k8s.io=${k8s.url}/library`],
        { env: { AIRLOCK_PASSWORD: 'pw', HTTPS_PROXY: undefined, HTTP_PROXY: undefined, https_proxy: undefined, http_proxy: undefined } },
      );
      assert.equal(res.code, 0, res.stderr);
      assert.ok(existsSync(join(work, 'mixed.tar')));
      assert.equal(manifestRequests(hub, 'GET').length, 2);
      // Past the preflight's GET /v2/, every request is a manifest request, redirected.
      const redirected = k8s.log.filter((e) => e.url !== '/v2/');
      assert.ok(redirected.length > 0 && redirected.every((e) => e.status === 307), JSON.stringify(k8s.log));
      assert.ok(manifestRequests(storage, 'GET').length >= 2, 'the index and the amd64 manifest came from the redirect target');
    });

    test('429 with the quota spent stops at once, not after six tries, and says what to do', async () => {
      hub = await front();
      for (const r of dockerHubRateLimit(100, 0)) hub.add(r);
      const { client: c, transport } = client(hub.host);
      try {
        await assert.rejects(c.getManifest('library/nginx', '1.25'), (e: RemoteError) => {
          assert.match(e.message, /HTTP 429 TOOMANYREQUESTS/);
          assert.match(e.message, /remaining 0;w=21600/);
          assert.match(e.hint ?? '', /docker login docker|--registry-mirror/);
          return true;
        });
        assert.equal(manifestRequests(hub, 'GET').length, 1);
      } finally {
        await transport.close();
      }
    });

    test('429 asking to come back in 5 minutes is the same clear stop', async () => {
      hub = await front();
      hub.add({ name: 'Docker Hub: 429 with Retry-After', method: 'GET', path: /\/manifests\//, answer: () => ({ status: 429, headers: { 'retry-after': '300' } }) });
      const { client: c, transport } = client(hub.host, { retry: DEFAULT_RETRY });
      try {
        const started = Date.now();
        await assert.rejects(c.getManifest('library/nginx', '1.25'), (e: RemoteError) => /HTTP 429.*retry after 300 s/.test(e.message) && /log in|--registry-mirror/.test(e.hint ?? ''));
        assert.equal(manifestRequests(hub, 'GET').length, 1);
        assert.ok(Date.now() - started < 5000);
      } finally {
        await transport.close();
      }
    });
  });

  // Harbor: a project's "prevent vulnerable images" / signature policy answers manifest requests 412
  // PROJECTPOLICYVIOLATION (goharbor/harbor src/server/middleware/vulnerable, contenttrust).
  test('Harbor: HEAD answered 412 counts as present for skipping, and a read says why it is refused', async () => {
    const harbor = await front();
    const body = JSON.stringify({ errors: [{ code: 'PROJECTPOLICYVIOLATION', message: 'current image with 3 vulnerabilities cannot be pulled due to configured policy' }] });
    harbor.add({ name: 'Harbor: pull blocked by policy', path: /\/manifests\//, method: 'HEAD', answer: () => ({ status: 412, headers: { 'content-type': 'application/json' }, body }) });
    harbor.add({ name: 'Harbor: pull blocked by policy', path: /\/manifests\//, method: 'GET', answer: () => ({ status: 412, headers: { 'content-type': 'application/json' }, body }) });
    const { client: c, transport } = client(harbor.host);
    const { client: src, transport: t2 } = client(registry.host);
    try {
      const nginx = images[0]!;
      const root = await new RemoteStore(src, 'library/nginx').resolve('1.25');
      // copyGraph into the Harbor repository: the root is "there", so nothing is pushed.
      await copyGraph(new RemoteStore(src, 'library/nginx'), new RemoteStore(c, 'library/nginx'), root, { session: new CopySession({ concurrency: 2 }) });
      assert.deepEqual(harbor.log.filter((e) => e.method !== 'HEAD'), []);
      assert.equal((await c.resolve('library/nginx', nginx.digest))?.digest, nginx.digest);
      await assert.rejects(c.getManifest('library/nginx', nginx.digest), (e: RemoteError) => {
        assert.match(e.message, /HTTP 412 PROJECTPOLICYVIOLATION.*the manifest is there, but the registry's policy forbids reading it/);
        assert.match(e.hint ?? '', /Harbor/);
        return true;
      });
      await assert.rejects(c.resolve('library/nginx', '1.25'), /412/);
    } finally {
      await transport.close();
      await t2.close();
    }
  });

  describe('mounts', () => {
    const copyAll = async (c: RegistryClient, targets: string[]) => {
      const { client: src, transport } = client(registry.host);
      try {
        for (const [i, img] of images.slice(0, 3).entries()) {
          const from = new RemoteStore(src, img.repository);
          const root = await from.resolve(img.tag);
          await copyGraph(from, new RemoteStore(c, targets[i]!), root, { session: new CopySession({ concurrency: 1 }) });
        }
      } finally {
        await transport.close();
      }
    };

    // Docker Hub and registries with fine-grained permissions answer a mount from a repository the
    // identity cannot read 401/403 (docker/cli#2520, distribution/distribution#2440); others 404.
    test('a refused mount (403, 404, 500) falls back to an upload', async () => {
      const q = await front();
      q.add({ name: 'mount refused: no pull on the source', method: 'POST', path: /\/blobs\/uploads\/$/, query: /mount=/, times: 1, answer: () => ({ status: 403, body: '{"errors":[{"code":"DENIED"}]}' }) });
      q.add({ name: 'mount refused: unknown source', method: 'POST', path: /\/blobs\/uploads\/$/, query: /mount=/, times: 1, answer: () => ({ status: 404 }) });
      q.add({ name: 'mount fails', method: 'POST', path: /\/blobs\/uploads\/$/, query: /mount=/, answer: () => ({ status: 500 }) });
      const { client: c, transport } = client(q.host, { retry: { ...FAST_RETRY, attempts: 1 } });
      try {
        await copyAll(c, ['mounts/a', 'mounts/b', 'mounts/c']);
        const check = client(registry.host);
        for (const [i, repo] of ['mounts/a', 'mounts/b', 'mounts/c'].entries()) {
          assert.equal((await check.client.resolve(repo, images[i]!.digest))?.digest, images[i]!.digest);
        }
        await check.transport.close();
        assert.ok(q.log.filter((e) => e.rule?.startsWith('mount')).length >= 2, 'mounts were tried');
      } finally {
        await transport.close();
      }
    });

    // GAR and registries with mounts disabled (distribution-spec: "the registry MAY ... open an upload session")
    // answer every mount 202: after two such answers, no more mount POSTs (and no DELETE of the sessions).
    test('a registry that never mounts is not asked again for the rest of the run', async () => {
      const q = await front();
      let n = 0;
      q.add({
        name: 'never mounts',
        method: 'POST',
        path: /\/blobs\/uploads\/$/,
        query: /mount=/,
        answer: (req) => ({ status: 202, headers: { location: `${req.url.split('?')[0]}never-${n++}` } }),
      });
      const { client: c, transport } = client(q.host);
      try {
        await copyAll(c, ['never/a', 'never/b', 'never/c']);
        // The shared base layer (and config-less duplicates) would be mounted into b and c: 2 tries, then none.
        assert.equal(q.log.filter((e) => e.rule === 'never mounts').length, 2);
        assert.equal(q.log.filter((e) => e.method === 'DELETE').length, 2);
      } finally {
        await transport.close();
      }
    });
  });

  describe('uploads', () => {
    // ECR answers 201 Created to PATCH (aws/containers-roadmap#1079); docker pushes a large blob as one
    // streaming PATCH and a closing PUT (distribution/distribution registry/client/blob_writer.go).
    test('ECR: one streaming PATCH per large blob, 201 accepted', async () => {
      const ecr = await front();
      ecr.add({ name: 'ECR: PATCH answers 201', method: 'PATCH', path: /\/blobs\/uploads\//, rewrite: (res) => (res.status === 202 ? { status: 201 } : {}) });
      const { client: c, transport } = client(ecr.host, { monolithicMaxBytes: 1000 });
      const { client: src, transport: t2 } = client(registry.host);
      try {
        const img = images[1]!;
        const from = new RemoteStore(src, img.repository);
        const root = await from.resolve(img.tag);
        await copyGraph(from, new RemoteStore(c, 'ecr/gateway'), root, { session: new CopySession({ concurrency: 2 }) });
        const patches = ecr.log.filter((e) => e.method === 'PATCH');
        const large = img.blobs.filter((b) => b.size > 1000);
        assert.equal(patches.length, large.length, 'one PATCH per large blob');
        assert.ok(patches.every((e) => e.status === 201));
        assert.equal((await c.resolve('ecr/gateway', img.digest))?.digest, img.digest);
      } finally {
        await transport.close();
        await t2.close();
      }
    });

    // A closing PUT that commits and is then answered 5xx (a proxy or load balancer timing out, as seen in
    // front of Artifactory and Nexus): the blob is there; HEAD tells, and the push goes on.
    test('a closing PUT that commits and then fails: HEAD finds the blob, the push succeeds', async () => {
      const lb = await front();
      lb.add({ name: 'load balancer: 502 after the commit', method: 'PUT', path: /\/blobs\/uploads\//, query: /digest=/, times: 2, rewrite: () => ({ status: 502, body: 'Bad Gateway' }) });
      const { client: c, transport } = client(lb.host, { monolithicMaxBytes: 1000 });
      const { client: src, transport: t2 } = client(registry.host);
      try {
        const img = images[2]!;
        const from = new RemoteStore(src, img.repository);
        const root = await from.resolve(img.tag);
        await copyGraph(from, new RemoteStore(c, 'lb/ng-manager'), root, { session: new CopySession({ concurrency: 1 }) });
        assert.equal(lb.log.filter((e) => e.status === 502).length, 2);
        assert.equal((await c.resolve('lb/ng-manager', img.digest))?.digest, img.digest);
      } finally {
        await transport.close();
        await t2.close();
      }
    });
  });

  // The same, when the answer never comes (a proxy's idle timeout is longer than ours).
  test('a closing PUT that commits and then never answers: HEAD finds the blob after the timeout, no second upload', async () => {
    const lb = await front();
    lb.add({ name: 'proxy: no answer after the commit', method: 'PUT', path: /\/blobs\/uploads\//, query: /digest=/, times: 1, rewrite: () => ({ hang: true }) });
    const transport = new HttpTransport({ retry: FAST_RETRY, proxy: NO_PROXY, timeoutMs: 1500 });
    const c = new RegistryClient(lb.host, transport, { plainHttp: true, retry: FAST_RETRY });
    const { client: src, transport: t2 } = client(registry.host);
    try {
      const img = images[0]!;
      const from = new RemoteStore(src, img.repository);
      const root = await from.resolve(img.tag);
      await copyGraph(from, new RemoteStore(c, 'hang/nginx'), root, { session: new CopySession({ concurrency: 1 }) });
      assert.equal(lb.log.filter((e) => e.status === -1).length, 1);
      // Each blob sent once: the one whose answer never came is not uploaded again (the manifest's bytes go up as a blob too: stored-link.ts).
      assert.equal(lb.log.filter((e) => e.method === 'PUT' && /digest=/.test(e.url) && !e.url.includes(img.digest.slice(7))).length, img.blobs.length);
      assert.equal((await c.resolve('hang/nginx', img.digest))?.digest, img.digest);
    } finally {
      await transport.close();
      await t2.close();
    }
  });

  describe('authentication', () => {
    // docker login with an OAuth2 registry (GitLab, Quay robot tokens via docker login, ACR, GAR) stores an
    // identitytoken; docker and containers/image trade it with POST grant_type=refresh_token (distribution's oauth.md).
    test('identitytoken from config.json goes through the OAuth2 POST', async () => {
      const reg = await startRegistry({ auth: 'token', refreshTokens: { 'refresh-abc': 'airlock' } });
      try {
        await pushImages(reg.url, [images[0]!], { username: reg.username, password: reg.password });
        const config = join(work, 'docker-config.json');
        writeFileSync(config, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('<token>:').toString('base64'), identitytoken: 'refresh-abc' } } }));
        const creds = credentialsFor(reg.host, { dockerConfigPath: config, env: {} });
        const { client: c, transport } = client(reg.host, { credentials: () => creds });
        try {
          assert.equal((await c.resolve('library/nginx', '1.25'))?.digest, images[0]!.digest);
          const posts = reg.tokenRequests.filter((r) => r.method === 'POST');
          assert.equal(posts.length, 1);
          assert.deepEqual({ grantType: posts[0]!.grantType, clientId: posts[0]!.clientId, user: posts[0]!.user, status: posts[0]!.status }, { grantType: 'refresh_token', clientId: 'airlock', user: 'airlock', status: 200 });
          assert.deepEqual(posts[0]!.scopes, ['repository:library/nginx:pull']);
          // The same through a credential helper answering Username "<token>" (docker-credential-ecr-login, -gcloud, -desktop).
          const bin = join(work, 'bin');
          mkdirSync(bin, { recursive: true });
          writeFileSync(join(bin, 'docker-credential-airlocktest'), '#!/bin/sh\ncat >/dev/null\necho \'{"ServerURL":"x","Username":"<token>","Secret":"refresh-abc"}\'\n', { mode: 0o755 });
          writeFileSync(config, JSON.stringify({ credHelpers: { [reg.host]: 'airlocktest' } }));
          const helped = credentialsFor(reg.host, { dockerConfigPath: config, env: { PATH: `${bin}:${process.env.PATH}` } });
          const viaHelper = client(reg.host, { credentials: () => helped });
          assert.equal((await viaHelper.client.resolve('harness/absent', '1'))?.digest, undefined);
          await viaHelper.transport.close();
          assert.equal(reg.tokenRequests.filter((r) => r.method === 'POST' && r.status === 200).length, 2);
          // A refresh token the server does not know is refused with a hint to log in again.
          const bad = client(reg.host, { credentials: () => ({ username: '<token>', password: 'expired' }) });
          await assert.rejects(bad.client.resolve('library/nginx', '1.25'), (e: RemoteError) => /refused/.test(e.message) && /log in again/.test(e.hint ?? ''));
          await bad.transport.close();
        } finally {
          await transport.close();
        }
      } finally {
        await reg.stop();
      }
    });

    // Artifactory and Nexus behind SSO answer several challenges (Negotiate, Basic, Bearer); some proxies drop
    // WWW-Authenticate from 401s that are not /v2/ (docker pings /v2/ first and never notices).
    test('several challenges choose Bearer; a 401 without one pings /v2/', async () => {
      const reg = await startRegistry({ auth: 'token', anonymous: 'pull' });
      try {
        await pushImages(reg.url, [images[0]!], { username: reg.username, password: reg.password });
        const q = await front(reg);
        q.add({
          name: 'Artifactory: several challenges',
          path: /^\/v2\/$/,
          rewrite: (res) => (res.status === 401 ? { setHeaders: { 'www-authenticate': `Negotiate, Basic realm="Artifactory Realm", ${String(res.headers['www-authenticate'])}` } } : {}),
        });
        q.add({ name: 'proxy drops the challenge', path: /^\/v2\/.+/, rewrite: (res) => (res.status === 401 ? { removeHeaders: ['www-authenticate'] } : {}) });
        const { client: c, transport } = client(q.host, { credentials: () => ({ username: reg.username!, password: reg.password! }) });
        const earlier = reg.tokenRequests.length;
        try {
          assert.equal((await c.resolve('library/nginx', '1.25'))?.digest, images[0]!.digest);
          assert.ok(reg.tokenRequests.slice(earlier).some((r) => r.user === 'airlock' && r.status === 200), 'a Bearer token was fetched');
          assert.ok(q.log.some((e) => e.url === '/v2/' && e.status === 401), 'the API root was asked for the challenge');
        } finally {
          await transport.close();
        }
      } finally {
        await reg.stop();
      }
    });
  });

  // Every connected host behind an egress proxy: HTTPS_PROXY / HTTP_PROXY / NO_PROXY, as curl and docker read them.
  describe('forward proxy (tinyproxy)', () => {
    test('a pull goes through the proxy; NO_PROXY bypasses it', async () => {
      const proxy = await startTinyproxy();
      try {
        const via = client(registry.host, { proxy: { httpProxy: proxy.url, httpsProxy: proxy.url } });
        assert.equal((await via.client.getManifest('library/nginx', '1.25'))?.descriptor.digest, images[0]!.digest);
        await via.transport.close();
        const seen = await proxy.requests();
        assert.ok(seen.some((r) => r.startsWith(`GET http://${registry.host}/v2/library/nginx/manifests/1.25`)), seen.join('\n'));

        const direct = client(registry.host, { proxy: { httpProxy: proxy.url, noProxy: 'localhost,127.0.0.1' } });
        assert.equal((await direct.client.resolve('harness/gateway', '2.0'))?.digest, images[1]!.digest);
        await direct.transport.close();
        assert.ok(!(await proxy.requests()).some((r) => r.includes('harness/gateway')), 'NO_PROXY went direct');

        // Through the CLI: the environment's lower-case variables.
        writeFileSync(join(work, 'airlock.key'), generateKeyPair('pw').privateKeyPem, { mode: 0o600 });
        writeFileSync(join(work, 'proxy.yaml'), ['name: viaproxy', 'version: 1.0.0', 'images:', '  - harness/ng-manager:1.0', ''].join('\n'));
        const res = await airlock(['pack', '-f', join(work, 'proxy.yaml'), '-o', join(work, 'proxy.tar'), '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${registry.url}`], {
          env: { AIRLOCK_PASSWORD: 'pw', http_proxy: proxy.url, HTTP_PROXY: undefined, no_proxy: undefined, NO_PROXY: undefined },
        });
        assert.equal(res.code, 0, res.stderr);
        assert.ok((await proxy.requests()).some((r) => r.includes('harness/ng-manager')));
      } finally {
        await proxy.stop();
      }
    });

    test('https through the proxy (CONNECT): --ca-file still verifies the registry', async () => {
      const proxy = await startTinyproxy();
      const secure = await startRegistry({ tls: true });
      try {
        await pushImages(secure.url, [images[0]!], { caFile: secure.caFile });
        const via = client(secure.host, { proxy: { httpsProxy: proxy.url }, caFile: secure.caFile });
        assert.equal((await via.client.resolve('library/nginx', '1.25'))?.digest, images[0]!.digest);
        await via.transport.close();
        assert.ok((await proxy.requests()).some((r) => r.startsWith(`CONNECT ${secure.host}`)), (await proxy.requests()).join('\n'));
        // Without the enclave CA the tunnel opens but TLS to the registry fails, with the usual hint.
        const untrusted = new HttpTransport({ proxy: { httpsProxy: proxy.url }, retry: { ...FAST_RETRY, attempts: 1 } });
        const c = new RegistryClient(secure.host, untrusted, { retry: FAST_RETRY });
        await assert.rejects(c.resolve('library/nginx', '1.25'), (e: RemoteError) => /through the proxy/.test(e.message) && /--ca-file/.test(e.hint ?? ''));
        await untrusted.close();
      } finally {
        await secure.stop();
        await proxy.stop();
      }
    });

    test('S3: the upload goes through the proxy the environment names', async () => {
      const proxy = await startTinyproxy();
      const s3 = await startS3();
      try {
        const pair = generateKeyPair('pw');
        const { tar } = buildBundle([{ path: 'manifests/app.yaml', body: Buffer.from('kind: Namespace\n') }], readPrivateKey(pair.privateKeyPem, 'pw', 'k'));
        writeFileSync(join(work, 's3.tar'), tar);
        const res = await airlock(['upload', join(work, 's3.tar'), `s3://${s3.bucket}/drop/`, '--s3-endpoint', s3.endpoint], {
          env: { ...s3.env, AWS_ENDPOINT_URL: undefined, AWS_ENDPOINT_URL_S3: undefined, AWS_PROFILE: undefined, HTTP_PROXY: proxy.url, http_proxy: undefined, NO_PROXY: undefined, no_proxy: undefined },
        });
        assert.equal(res.code, 0, res.stderr);
        const seen = await proxy.requests();
        assert.ok(seen.some((r) => r.startsWith(`PUT ${s3.endpoint}/${s3.bucket}/drop/s3.tar`)), seen.join('\n'));
      } finally {
        await s3.stop();
        await proxy.stop();
      }
    });

    test('a proxy that wants credentials: a clear error; wrong credentials never shown', async () => {
      const proxy = await startTinyproxy({ basicAuth: { user: 'egress', password: 'right-one' } });
      try {
        const bare = proxy.url.replace('egress:right-one@', '');
        const none = client(registry.host, { proxy: { httpProxy: bare }, retry: { ...FAST_RETRY, attempts: 1 } });
        await assert.rejects(none.client.resolve('library/nginx', '1.25'), (e: RemoteError) => {
          assert.ok(e instanceof RemoteError);
          assert.match(e.message, /through the proxy http:\/\/127\.0\.0\.1:\d+.*Proxy Authentication Required \(407\)/);
          assert.match(e.hint ?? '', /HTTP_PROXY.*NO_PROXY/);
          return true;
        });
        await none.transport.close();
        // tinyproxy answers wrong credentials with 401 (not 407): whatever the message, the password is not in it.
        const wrong = client(registry.host, { proxy: { httpProxy: proxy.url.replace('right-one', 'wrong-s3cret') }, retry: { ...FAST_RETRY, attempts: 1 } });
        await assert.rejects(wrong.client.resolve('library/nginx', '1.25'), (e: RemoteError) => {
          assert.ok(e instanceof RemoteError);
          assert.doesNotMatch(`${e.message} ${e.hint ?? ''} ${(e.cause as Error | undefined)?.message ?? ''}`, /wrong-s3cret/);
          return true;
        });
        await wrong.transport.close();
        const ok = client(registry.host, { proxy: { httpProxy: proxy.url } });
        assert.equal((await ok.client.resolve('library/nginx', '1.25'))?.digest, images[0]!.digest);
        await ok.transport.close();
      } finally {
        await proxy.stop();
      }
    });
  });
});
