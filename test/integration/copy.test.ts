import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyGraph, CopySession, type CopyEvent } from '../../shared/copy.ts';
import { VerificationError } from '../../shared/cli/errors.ts';
import { RegistryClient, type RegistryOptions } from '../../shared/registry/client.ts';
import { HttpTransport } from '../../shared/registry/transport.ts';
import { credentialsFor } from '../../shared/registry/credentials.ts';
import { LayoutStore } from '../../shared/store/layout.ts';
import { RemoteStore } from '../../shared/store/remote.ts';
import { parsePlatform } from '../../shared/oci/platform.ts';
import { generateImages, pushImages, type SyntheticImage } from '../services/fixtures.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { startFaultProxy } from '../services/faultProxy.ts';
import { skopeoFlags } from '../services/skopeo.ts';
import { runBytes } from '../services/exec.ts';
import { FAST_RETRY } from '../helpers/retry.ts';


/** A client for a test registry: its CA passed explicitly, plain HTTP only for a plain registry. */
function clientFor(reg: RegistryService, extra: RegistryOptions = {}): { client: RegistryClient; transport: HttpTransport } {
  const transport = new HttpTransport({ caFile: reg.caFile, retry: FAST_RETRY });
  const client = new RegistryClient(reg.host, transport, {
    plainHttp: reg.caFile === undefined,
    credentials: () => (reg.username ? { username: reg.username, password: reg.password! } : undefined),
    retry: FAST_RETRY,
    ...extra,
  });
  return { client, transport };
}

async function skopeoDigest(reg: RegistryService, ref: string): Promise<string> {
  const raw = await runBytes('skopeo', ['inspect', '--raw', ...skopeoFlags(reg), `docker://${reg.host}/${ref}`]);
  return 'sha256:' + createHash('sha256').update(raw).digest('hex');
}

/** registry -> layout -> registry for every image, then skopeo (not our code) checks each digest. */
async function roundTrip(src: RegistryService, dst: RegistryService, images: SyntheticImage[], layoutDir: string) {
  const a = clientFor(src);
  const b = clientFor(dst);
  try {
    const layout = await LayoutStore.open(layoutDir);
    const session = new CopySession({ concurrency: 4 });
    for (const img of images) {
      const from = new RemoteStore(a.client, img.repository);
      const root = await from.resolve(img.tag);
      assert.equal(root.digest, img.digest);
      const copied = await copyGraph(from, layout, root, { session });
      await layout.tag(copied, `${src.host}/${img.repository}:${img.tag}`);
    }
    const session2 = new CopySession({ concurrency: 4 });
    for (const img of images) {
      const root = await layout.resolve(`${src.host}/${img.repository}:${img.tag}`);
      const to = new RemoteStore(b.client, img.repository);
      const copied = await copyGraph(layout, to, root, { session: session2 });
      await to.tag(copied, img.tag);
    }
    for (const img of images) assert.equal(await skopeoDigest(dst, `${img.repository}:${img.tag}`), img.digest);
  } finally {
    await a.transport.close();
    await b.transport.close();
  }
}

describe('copyGraph through real registries', { concurrency: false }, () => {
  let source: RegistryService;
  let images: SyntheticImage[];
  let work: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'airlock-copy-'));
    source = await startRegistry();
    images = await pushImages(
      source.url,
      await generateImages({
        seed: 7,
        images: [
          { repository: 'harness/ng-manager', tag: '1.0', layers: 3, layerSize: 200_000, sharedBaseLayers: 1 },
          { repository: 'harness/pipeline', tag: 'latest', layers: 2, layerSize: 150_000, sharedBaseLayers: 1, format: 'docker' },
          {
            repository: 'library/nginx',
            tag: '1.25',
            layers: 2,
            layerSize: 100_000,
            sharedBaseLayers: 1,
            platforms: ['linux/amd64', 'linux/arm64/v8'],
          },
          {
            repository: 'harness/delegate',
            tag: 'multi',
            layers: 2,
            layerSize: 100_000,
            platforms: ['linux/amd64', 'linux/arm64'],
            format: 'docker',
          },
        ],
      }),
    );
  });

  after(async () => {
    await source?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('anonymous: registry -> layout -> registry keeps every digest (skopeo checks)', async () => {
    const dst = await startRegistry();
    try {
      await roundTrip(source, dst, images, join(work, 'anon'));
      // The layout is a valid OCI layout that skopeo reads by full reference.
      const raw = await runBytes('skopeo', [
        'inspect',
        '--raw',
        `oci:${join(work, 'anon')}:${source.host}/harness/ng-manager:1.0`,
      ]);
      assert.equal('sha256:' + createHash('sha256').update(raw).digest('hex'), images[0]!.digest);
    } finally {
      await dst.stop();
    }
  });

  test('Basic auth destination', async () => {
    const dst = await startRegistry({ auth: 'basic' });
    try {
      await roundTrip(source, dst, images, join(work, 'basic'));
    } finally {
      await dst.stop();
    }
  });

  test('Bearer token destination: one token request per scope set, cached', async () => {
    const dst = await startRegistry({ auth: 'token' });
    try {
      await roundTrip(source, dst, images, join(work, 'token'));
      assert.ok(dst.tokenRequests.length > 0);
      assert.ok(dst.tokenRequests.every((r) => r.user === dst.username));
      const pushScopes = dst.tokenRequests.filter((r) => r.scopes.some((s) => s.endsWith(':pull,push')));
      assert.ok(pushScopes.length <= images.length * 3, `too many token requests: ${pushScopes.length}`);
    } finally {
      await dst.stop();
    }
  });

  test('HTTPS with token auth, trusting only the test CA passed explicitly', async () => {
    const dst = await startRegistry({ auth: 'token', tls: true });
    try {
      await roundTrip(source, dst, images, join(work, 'tls'));
      // Without the CA the same push is refused with a TLS hint, exit code 4.
      const transport = new HttpTransport({ retry: FAST_RETRY });
      const client = new RegistryClient(dst.host, transport, { retry: FAST_RETRY });
      await assert.rejects(client.resolve('harness/ng-manager', '1.0'), (err: Error & { exitCode?: number; hint?: string }) => {
        assert.equal(err.exitCode, 4);
        assert.match(err.hint ?? '', /--ca-file/);
        return true;
      });
      await transport.close();
    } finally {
      await dst.stop();
    }
  });

  test('credentials from a docker config.json and from a named environment variable', async () => {
    const dst = await startRegistry({ auth: 'token' });
    const transport = new HttpTransport({ retry: FAST_RETRY });
    try {
      const config = join(work, 'docker-config.json');
      const auth = Buffer.from(`${dst.username}:${dst.password}`).toString('base64');
      await writeFile(config, JSON.stringify({ auths: { [`http://${dst.host}`]: { auth } } }));
      const fromConfig = new RegistryClient(dst.host, transport, {
        plainHttp: true,
        retry: FAST_RETRY,
        credentials: (host) => credentialsFor(host, { dockerConfigPath: config, env: {} }),
      });
      const to = new RemoteStore(fromConfig, 'cfg/app');
      const img = images[0]!;
      const from = new RemoteStore(clientFor(source).client, img.repository);
      await to.tag(await copyGraph(from, to, await from.resolve(img.tag)), 'v1');
      assert.equal(await skopeoDigest(dst, 'cfg/app:v1'), img.digest);

      const fromEnv = new RegistryClient(dst.host, transport, {
        plainHttp: true,
        retry: FAST_RETRY,
        credentials: (host) =>
          credentialsFor(host, { username: dst.username, passwordEnv: 'REG_PW', env: { REG_PW: dst.password } }),
      });
      assert.equal((await fromEnv.resolve('cfg/app', 'v1'))?.digest, img.digest);
      const granted = dst.tokenRequests.filter((r) => r.user === dst.username && r.status === 200);
      assert.ok(granted.length >= 2, 'tokens were issued to the configured user');
    } finally {
      await transport.close();
      await dst.stop();
    }
  });

  test('wrong credentials give exit 4 naming the registry', async () => {
    const dst = await startRegistry({ auth: 'basic' });
    const transport = new HttpTransport({ retry: FAST_RETRY });
    try {
      const client = new RegistryClient(dst.host, transport, {
        plainHttp: true,
        credentials: () => ({ username: dst.username!, password: 'wrong' }),
      });
      await assert.rejects(client.resolve('harness/ng-manager', '1.0'), (err: Error & { exitCode?: number }) => {
        assert.equal(err.exitCode, 4);
        assert.match(err.message, new RegExp(`${dst.host}.*401`));
        assert.doesNotMatch(err.message, /wrong/);
        return true;
      });
    } finally {
      await transport.close();
      await dst.stop();
    }
  });

  test('platform filter: an index keeps its digest without platforms and is filtered with them', async () => {
    const nginx = images.find((i) => i.repository === 'library/nginx')!;
    const { client, transport } = clientFor(source);
    try {
      const from = new RemoteStore(client, nginx.repository);
      const root = await from.resolve(nginx.tag);
      const whole = await LayoutStore.open(join(work, 'whole'));
      assert.equal((await copyGraph(from, whole, root)).digest, nginx.digest);

      const amd = await LayoutStore.open(join(work, 'amd64'));
      const filtered = await copyGraph(from, amd, root, { platforms: [parsePlatform('linux/amd64')] });
      assert.notEqual(filtered.digest, nginx.digest);
      const index = JSON.parse((await readFile(amd.blobPath(filtered.digest))).toString()) as {
        manifests: { platform: { architecture: string } }[];
      };
      assert.deepEqual(
        index.manifests.map((m) => m.platform.architecture),
        ['amd64'],
      );
      const arm = nginx.children!.find((c) => c.platform.architecture === 'arm64')!;
      assert.equal(await amd.exists({ mediaType: arm.mediaType, digest: arm.digest, size: arm.size }), false);

      await assert.rejects(
        copyGraph(from, amd, root, { platforms: [parsePlatform('linux/s390x')] }),
        /no manifest for the requested platforms/,
      );
    } finally {
      await transport.close();
    }
  });

  test('a docker.io reference is pulled through a mirror and keeps its docker.io name', async () => {
    const transport = new HttpTransport({ retry: FAST_RETRY });
    try {
      const hub = new RegistryClient('docker.io', transport, { mirrors: { 'docker.io': source.url }, retry: FAST_RETRY });
      assert.equal(hub.display('harness/ng-manager'), 'docker.io/harness/ng-manager');
      const from = new RemoteStore(hub, 'harness/ng-manager');
      const dir = join(work, 'mirror');
      const layout = await LayoutStore.open(dir);
      const copied = await copyGraph(from, layout, await from.resolve('1.0'));
      await layout.tag(copied, 'docker.io/harness/ng-manager:1.0');
      const raw = await runBytes('skopeo', ['inspect', '--raw', `oci:${dir}:docker.io/harness/ng-manager:1.0`]);
      assert.equal('sha256:' + createHash('sha256').update(raw).digest('hex'), images[0]!.digest);
      assert.ok((await source.requests(/^GET \/v2\/harness\/ng-manager\/manifests\//)).length > 0, 'served by the mirror');
    } finally {
      await transport.close();
    }
  });

  test('survives two dropped connections mid-blob and a 429, byte-exact', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: source.port });
    const img = images[0]!;
    const big = img.blobs.reduce((a, b) => (b.size > a.size ? b : a));
    proxy.addFault({ match: new RegExp(`GET /v2/.*/blobs/${big.digest}`), times: 2, kind: 'drop-after-bytes', bytes: 50_000 });
    proxy.addFault({ match: /GET \/v2\/.*\/manifests\//, times: 1, kind: 'status', status: 429, retryAfterSeconds: 1 });
    const transport = new HttpTransport({ retry: FAST_RETRY });
    const client = new RegistryClient(source.host, transport, {
      mirrors: { [source.host]: proxy.url },
      retry: FAST_RETRY,
    });
    try {
      const from = new RemoteStore(client, img.repository);
      const dir = join(work, 'faults');
      const layout = await LayoutStore.open(dir);
      const copied = await copyGraph(from, layout, await from.resolve(img.tag));
      assert.equal(copied.digest, img.digest);
      assert.equal(proxy.stats().faultsInjected, 3);
      const ranged = proxy.stats().requests.filter((r) => r.includes(big.digest));
      assert.equal(ranged.length, 3, 'the blob was fetched once and resumed twice');
      for (const blob of img.blobs) {
        const bytes = await readFile(layout.blobPath(blob.digest));
        assert.equal('sha256:' + createHash('sha256').update(bytes).digest('hex'), blob.digest);
      }
    } finally {
      await transport.close();
      await proxy.stop();
    }
  });

  test('a blob whose bytes do not match its digest is refused and never committed', async () => {
    // Corrupt one layer inside a registry's own storage: the registry serves it as is.
    const reg = await startRegistry();
    const [img] = await pushImages(
      reg.url,
      await generateImages({ seed: 99, images: [{ repository: 'victim/app', tag: 'v1', layers: 2, layerSize: 300_000 }] }),
    );
    const layer = img!.blobs[img!.blobs.length - 1]!;
    const hex = layer.digest.slice('sha256:'.length);
    const dataPath = join(reg.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const bytes = await readFile(dataPath);
    bytes[bytes.length - 10] ^= 0xff;
    await writeFile(dataPath, bytes);

    const dst = await startRegistry();
    const a = clientFor(reg);
    const b = clientFor(dst);
    try {
      const from = new RemoteStore(a.client, 'victim/app');
      const root = await from.resolve('v1');
      const dir = join(work, 'tampered');
      const layout = await LayoutStore.open(dir);
      await assert.rejects(copyGraph(from, layout, root), (err: Error) => {
        assert.ok(err instanceof VerificationError, String(err));
        assert.match(err.message, new RegExp(layer.digest.slice(0, 19)));
        return true;
      });
      assert.equal(await layout.exists(layer), false);
      const leftovers = (await readdir(join(dir, 'blobs/sha256'))).filter((f) => f.includes(hex));
      assert.deepEqual(leftovers, []);
      assert.equal(await layout.exists(root), false, 'no manifest without its blobs');

      const to = new RemoteStore(b.client, 'victim/app');
      await assert.rejects(copyGraph(from, to, root), VerificationError);
      assert.equal(await b.client.blobExists('victim/app', layer), false);
      assert.equal(await b.client.resolve('victim/app', root.digest), undefined);
    } finally {
      await a.transport.close();
      await b.transport.close();
      await reg.stop();
      await dst.stop();
    }
  });

  test('50 images sharing base layers: each shared blob is uploaded once, then mounted', async () => {
    const src = await startRegistry();
    const dst = await startRegistry();
    const specs = Array.from({ length: 50 }, (_, i) => ({
      repository: `team${i % 5}/svc${i}`,
      tag: 'v1',
      layers: 3,
      layerSize: 4_000,
      sharedBaseLayers: 2,
    }));
    const many = await pushImages(src.url, await generateImages({ seed: 3, images: specs, baseLayerSize: 20_000 }));
    const a = clientFor(src);
    const b = clientFor(dst);
    const events: CopyEvent[] = [];
    try {
      const session = new CopySession({ concurrency: 8, onEvent: (e) => events.push(e) });
      await Promise.all(
        many.map(async (img) => {
          const from = new RemoteStore(a.client, img.repository);
          const to = new RemoteStore(b.client, img.repository);
          const copied = await copyGraph(from, to, await from.resolve(img.tag), { session });
          await to.tag(copied, img.tag);
        }),
      );
      const uploads = await dst.requests(/^PUT \/v2\/.*\/blobs\/uploads\/.*digest=/);
      const unique = new Set(many.flatMap((i) => i.blobs.map((b) => b.digest)));
      const perDigest = new Map<string, number>();
      for (const line of uploads) {
        const d = decodeURIComponent(/digest=([^&\s]+)/.exec(line)![1]!);
        // A manifest's own bytes go up as a blob before it (stored-link.ts): not a layer sent twice.
        if (unique.has(d)) perDigest.set(d, (perDigest.get(d) ?? 0) + 1);
      }
      assert.equal(perDigest.size, unique.size, 'every distinct blob uploaded');
      for (const [d, n] of perDigest) assert.equal(n, 1, `${d} uploaded ${n} times`);
      const mounts = (await dst.requests(/^POST \/v2\/.*\/blobs\/uploads\/\?.*mount=/)).length;
      assert.ok(mounts >= 49 * 2, `shared base layers mounted, not uploaded (${mounts} mounts)`);
      assert.ok(events.some((e) => e.type === 'blob-mount'));
      for (const img of many.slice(0, 3)) assert.equal(await skopeoDigest(dst, `${img.repository}:v1`), img.digest);

      // A second copy of the same images finds everything in place: no upload, no mount.
      const before = (await dst.requests(/^(PUT|POST|PATCH) /)).length;
      const again = new CopySession({ concurrency: 8 });
      for (const img of many) {
        const from = new RemoteStore(a.client, img.repository);
        await copyGraph(from, new RemoteStore(b.client, img.repository), await from.resolve(img.tag), { session: again });
      }
      assert.equal((await dst.requests(/^(PUT|POST|PATCH) /)).length, before, 'nothing written the second time');
    } finally {
      await a.transport.close();
      await b.transport.close();
      await src.stop();
      await dst.stop();
    }
  });
});
