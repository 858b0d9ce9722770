import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { create as createTar } from 'tar';
import { fetchManifests, type ManifestFile } from '../../packer/sources/manifests.ts';
import { HttpTransport } from '../../shared/registry/transport.ts';
import { FAST_RETRY } from '../helpers/retry.ts';
import { tarFile, tarHeader, TAR_END } from '../helpers/tar.ts';
import { createTestCA } from '../services/ca.ts';
import { run } from '../services/exec.ts';
import { startNginx, startStaticServer, type NginxService } from '../services/nginx.ts';
import { freePort } from '../services/ports.ts';

/**
 * manifests: url sources against a real nginx: over HTTPS with a test CA that
 * is passed only as caFile (NODE_EXTRA_CA_CERTS, which this environment sets,
 * is unset for the whole file), and over plain HTTP with Basic auth and a
 * redirect in front.
 */
describe('manifests from URLs', () => {
  let web: NginxService; // HTTPS, static files, the test CA
  let plain: NginxService; // HTTP: /private/ behind Basic auth, /moved.yaml redirects
  let root: string;
  let work: string;
  let caFile: string;
  const savedExtraCAs = process.env.NODE_EXTRA_CA_CERTS;
  const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
  const app = 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: app }\n';
  const password = 's3cret-Pa55';

  before(async () => {
    delete process.env.NODE_EXTRA_CA_CERTS; // trustedCAs() reads it when a transport is made
    root = mkdtempSync(join(tmpdir(), 'airlock-www-'));
    work = mkdtempSync(join(tmpdir(), 'airlock-murl-'));
    writeFileSync(join(root, 'app.yaml'), app);

    // A release archive: deploy/{kustomization.yaml, base/web.yaml}, as .tar.gz, .tar, ./-prefixed and nameless.
    const tree = join(work, 'tree');
    mkdirSync(join(tree, 'deploy', 'base'), { recursive: true });
    writeFileSync(join(tree, 'deploy', 'kustomization.yaml'), 'resources: [base/web.yaml]\n');
    writeFileSync(join(tree, 'deploy', 'base', 'web.yaml'), 'kind: Deployment\n');
    await createTar({ gzip: true, file: join(root, 'release-1.0.tar.gz'), cwd: tree, portable: true }, ['deploy']);
    await createTar({ file: join(root, 'plain.tar'), cwd: tree, portable: true }, ['deploy']);
    await createTar({ gzip: true, file: join(root, 'dotted.tgz'), cwd: join(tree, 'deploy'), portable: true }, ['.']);
    mkdirSync(join(root, 'latest'));
    await createTar({ gzip: true, file: join(root, 'latest', 'bundle'), cwd: tree, portable: true }, ['deploy']); // gzip by magic only

    // Hostile archives.
    const evil = Buffer.from('kind: Secret\n');
    const hostile: Record<string, Buffer[]> = {
      'escape.tar.gz': [tarFile('deploy/ok.yaml', evil), tarFile('../escape.yaml', evil)],
      'nested-escape.tar.gz': [tarFile('deploy/../../escape.yaml', evil)],
      'absolute.tar.gz': [tarFile('/tmp/airlock-absolute.yaml', evil)],
      'hardlink.tar.gz': [tarFile('deploy/ok.yaml', evil), tarHeader('deploy/passwd.yaml', 0, '1', '/etc/passwd')],
      'raw-symlink.tar.gz': [tarHeader('deploy/passwd.yaml', 0, '2', '/etc/passwd'), tarFile('deploy/passwd.yaml', evil)],
      'device.tar.gz': [tarHeader('deploy/null.yaml', 0, '3')],
    };
    for (const [name, parts] of Object.entries(hostile)) writeFileSync(join(root, name), gzipSync(Buffer.concat([...parts, TAR_END])));
    symlinkSync('/etc/passwd', join(tree, 'deploy', 'passwd.yaml'));
    await createTar({ gzip: true, file: join(root, 'symlink.tar.gz'), cwd: tree, portable: true }, ['deploy']);

    // Over the cap: a sparse file whose Content-Length alone says no.
    writeFileSync(join(root, 'huge.yaml'), '');
    truncateSync(join(root, 'huge.yaml'), 513 * 1024 * 1024);

    const ca = await createTestCA(join(work, 'pki'));
    caFile = ca.caCert;
    web = await startStaticServer({ root, tls: ca });

    const htpasswd = join(work, 'htpasswd');
    writeFileSync(htpasswd, (await run('htpasswd', ['-Bbn', 'reader', password])).stdout);
    mkdirSync(join(root, 'private'));
    writeFileSync(join(root, 'private', 'secret-app.yaml'), app);
    plain = await startNginx({
      root,
      locations: [
        '    location /private/ {',
        '      auth_basic "airlock test";',
        `      auth_basic_user_file ${htpasswd};`,
        '    }',
        '    location = /moved.yaml { return 302 /app.yaml; }',
        '    location = /loop.yaml { return 302 /loop.yaml; }',
        // sub_filter drops Content-Length: the body arrives chunked, so only the byte count can stop it.
        `    location /chunked/ { alias ${root}/; sub_filter_types *; sub_filter 'airlock-never-there' ''; }`,
      ],
    });
  });

  after(async () => {
    if (savedExtraCAs !== undefined) process.env.NODE_EXTRA_CA_CERTS = savedExtraCAs;
    await web?.stop();
    await plain?.stop();
    rmSync(root, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  /** One url source into a fresh workDir; the test CA is trusted through caFile unless told otherwise. */
  const fetchUrl = async (url: string, sha256?: string, opts: { trust?: boolean; log?: string[] } = {}): Promise<ManifestFile[]> => {
    const workDir = mkdtempSync(join(work, 'w-'));
    return fetchManifests([{ kind: 'url', url, ...(sha256 ? { sha256 } : {}) }], {
      workDir,
      ...(opts.trust === false ? {} : { caFile }),
      onLog: (m) => opts.log?.push(m),
    });
  };
  const exit = (code: number, ...res: RegExp[]) => (e: Error & { exitCode?: number; hint?: string }) => {
    assert.equal(e.exitCode, code, e.message);
    for (const re of res) assert.match(`${e.message}\n${e.hint ?? ''}`, re);
    return true;
  };
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const deployPaths = (folder: string) => [`manifests/${folder}/deploy/base/web.yaml`, `manifests/${folder}/deploy/kustomization.yaml`];

  test('NODE_EXTRA_CA_CERTS is not in play, so the CA reaches the client only as caFile', () => {
    assert.equal(process.env.NODE_EXTRA_CA_CERTS, undefined);
    assert.match(web.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  });

  test('a single file over HTTPS, trusted through caFile and checked against its pin, lands as manifests/<URL basename>', async () => {
    const files = await fetchUrl(`${web.url}/app.yaml`, sha(app));
    assert.equal(files.length, 1);
    const [file] = files;
    assert.equal(file!.path, 'manifests/app.yaml');
    assert.equal(file!.size, Buffer.byteLength(app));
    assert.equal(file!.sha256, sha(app));
    assert.equal(readFileSync(file!.file, 'utf8'), app);
  });

  test('without the pin it still downloads, and the log says which sha256 to pin', async () => {
    const log: string[] = [];
    await fetchUrl(`${web.url}/app.yaml`, undefined, { log });
    assert.match(log.join('\n'), new RegExp(`not pinned.*sha256: ${sha(app)}`));
  });

  test('a wrong pin is exit 3 naming the URL, the pinned and the actual sha256', async () => {
    await assert.rejects(
      fetchUrl(`${web.url}/app.yaml`, 'a'.repeat(64)),
      exit(3, new RegExp(`manifests\\[0\\]\\.url ${esc(web.url)}/app\\.yaml: downloaded content has sha256 ${sha(app)}, but the spec pins sha256 a{64}`)),
    );
  });

  test('a .tar.gz archive is extracted under manifests/<archive name without extension>/', async () => {
    const archive = readFileSync(join(root, 'release-1.0.tar.gz'));
    const files = await fetchUrl(`${web.url}/release-1.0.tar.gz`, sha(archive));
    assert.deepEqual(files.map((f) => f.path), deployPaths('release-1.0'));
    const web1 = files[0]!;
    assert.equal(readFileSync(web1.file, 'utf8'), 'kind: Deployment\n');
    assert.equal(web1.sha256, sha('kind: Deployment\n'));
  });

  test('a .tar, a "./"-prefixed .tgz and a gzip archive known only by its magic bytes are archives too', async () => {
    assert.deepEqual((await fetchUrl(`${web.url}/plain.tar`)).map((f) => f.path), deployPaths('plain'));
    assert.deepEqual((await fetchUrl(`${web.url}/dotted.tgz`)).map((f) => f.path), ['manifests/dotted/base/web.yaml', 'manifests/dotted/kustomization.yaml']);
    assert.deepEqual((await fetchUrl(`${web.url}/latest/bundle`)).map((f) => f.path), deployPaths('bundle'));
  });

  test('archives with links, devices, absolute paths or ".." are refused (exit 3) and nothing lands outside', async () => {
    const cases: [string, RegExp][] = [
      ['symlink.tar.gz', /"deploy\/passwd\.yaml" is a symbolic link to "\/etc\/passwd"/],
      ['raw-symlink.tar.gz', /"deploy\/passwd\.yaml" is a symbolic link/],
      ['hardlink.tar.gz', /"deploy\/passwd\.yaml" is a hard link to "\/etc\/passwd"/],
      ['device.tar.gz', /"deploy\/null\.yaml" is a character device/],
      ['absolute.tar.gz', /"\/tmp\/airlock-absolute\.yaml" is an absolute path/],
      ['escape.tar.gz', /"\.\.\/escape\.yaml" climbs out of the archive/],
      ['nested-escape.tar.gz', /"deploy\/\.\.\/\.\.\/escape\.yaml" climbs out of the archive/],
    ];
    for (const [name, re] of cases) {
      const workDir = mkdtempSync(join(work, 'w-'));
      await assert.rejects(
        fetchManifests([{ kind: 'url', url: `${web.url}/${name}` }], { workDir, caFile }),
        exit(3, new RegExp(`manifests\\[0\\]\\.url ${esc(web.url)}/${esc(name)}: refused the archive`), re),
        name,
      );
      const extracted = join(workDir, 'source-0', 'extracted');
      assert.deepEqual(readdirSync(extracted), [name.replace(/\.tar\.gz$/, '')], `${name}: only the archive's own folder under ${extracted}`);
      assert.equal(existsSync(join(extracted, 'escape.yaml')) || existsSync(join(workDir, 'escape.yaml')), false, name);
    }
    assert.equal(existsSync('/tmp/airlock-absolute.yaml'), false);
  });

  test('404 is exit 4 naming the URL without its credentials or query', async () => {
    const u = new URL(`${web.url}/nope.yaml?X-Amz-Signature=q5ecret`);
    u.username = 'reader';
    u.password = 'pa55word';
    await assert.rejects(fetchUrl(u.href), (e: Error & { exitCode?: number; hint?: string }) => {
      exit(4, new RegExp(`manifests\\[0\\]\\.url ${esc(web.url)}/nope\\.yaml: GET ${esc(web.url)}/nope\\.yaml answered HTTP 404`))(e);
      assert.doesNotMatch(`${e.message}\n${e.hint}`, /pa55word|q5ecret|reader/);
      return true;
    });
  });

  test('an unreachable server is exit 4', async () => {
    const port = await freePort();
    const transport = new HttpTransport({ retry: FAST_RETRY });
    try {
      await assert.rejects(
        fetchManifests([{ kind: 'url', url: `http://127.0.0.1:${port}/app.yaml` }], { workDir: mkdtempSync(join(work, 'w-')), transport }),
        exit(4, new RegExp(`cannot reach http://127\\.0\\.0\\.1:${port}: connection refused`)),
      );
    } finally {
      await transport.close();
    }
  });

  test('HTTPS without the test CA is exit 4 pointing at --ca-file (the caFile is what made the other tests pass)', async () => {
    await assert.rejects(fetchUrl(`${web.url}/app.yaml`, sha(app), { trust: false }), exit(4, /certificate/, /--ca-file/));
  });

  test('credentials in the URL are sent as Basic auth; wrong ones are exit 4 and never printed', async () => {
    const good = new URL(`${plain.url}/private/secret-app.yaml`);
    good.username = 'reader';
    good.password = password;
    const [file] = await fetchUrl(good.href, sha(app));
    assert.equal(file!.path, 'manifests/secret-app.yaml');
    assert.equal(readFileSync(file!.file, 'utf8'), app);

    const bad = new URL(good);
    bad.password = 'wrong-Pa55';
    await assert.rejects(fetchUrl(bad.href), (e: Error & { exitCode?: number; hint?: string }) => {
      exit(4, /HTTP 401/, /credentials/)(e);
      assert.doesNotMatch(`${e.message}\n${e.hint}`, /wrong-Pa55|reader/);
      return true;
    });
    await assert.rejects(fetchUrl(`${plain.url}/private/secret-app.yaml`), exit(4, /HTTP 401/));
  });

  test('redirects are followed (a few), and the name comes from the URL in the spec', async () => {
    const [file] = await fetchUrl(`${plain.url}/moved.yaml`, sha(app));
    assert.equal(file!.path, 'manifests/moved.yaml');
    await assert.rejects(fetchUrl(`${plain.url}/loop.yaml`), exit(4, /more than 5 redirects/));
  });

  test('a download over 512 MiB is refused from its Content-Length, before its body is read (exit 2)', async () => {
    const workDir = mkdtempSync(join(work, 'w-'));
    await assert.rejects(
      fetchManifests([{ kind: 'url', url: `${web.url}/huge.yaml` }], { workDir, caFile }),
      exit(2, /huge\.yaml: more than 512 MiB; that is not a manifest file or archive/),
    );
    assert.equal(existsSync(join(workDir, 'source-0', 'download')), false, 'nothing was written');
  });

  test('a chunked download (no Content-Length) is cut off at 512 MiB (exit 2)', async () => {
    const [small] = await fetchUrl(`${plain.url}/chunked/app.yaml`, sha(app)); // the same file, chunked
    assert.equal(small!.size, Buffer.byteLength(app));
    const workDir = mkdtempSync(join(work, 'w-'));
    await assert.rejects(
      fetchManifests([{ kind: 'url', url: `${plain.url}/chunked/huge.yaml` }], { workDir }),
      exit(2, /huge\.yaml: more than 512 MiB/),
    );
    assert.equal(existsSync(join(workDir, 'source-0', 'download')), false, 'the partial download is removed');
  });
});
